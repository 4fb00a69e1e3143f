// System settings (admin only): what the store holds today.
import { api } from '../api.js';
import { h, mount, field, formValues, errorLine, showError } from '../ui.js';

// A form (#ID-form) that PUTs `values(form)` to /settings and says "Saved." or the API's error.
function settingsForm(id, children, values) {
  const err = errorLine();
  const saved = h(`p.ok#${id}-saved`, {});
  const form = h(`form.inline#${id}-form`, {}, ...children, h('button', { type: 'submit' }, 'Save'), err, saved);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    saved.textContent = '';
    try {
      await api('PUT', '/settings', values(form));
      saved.textContent = 'Saved.';
    } catch (e) {
      showError(err, e);
    }
  });
  return form;
}

// Call settings (FEATURES.md 8.1, 8.2); they apply to the next call.
const kCallNumbers = ['ring_timeout', 'max_call_duration', 'no_rtp_timeout', 'session_expires', 'session_min_se'];

export async function render() {
  const s = await api('GET', '/settings');
  const realm = settingsForm('settings',
    [field('SIP realm', 'sip_realm', { value: s.sip_realm, required: true })], (f) => formValues(f));
  const calls = settingsForm('call-settings', [
    field('Ring time (s)', 'ring_timeout', { type: 'number', min: 1, max: 600, value: s.ring_timeout, required: true }),
    field('Maximum call duration (s, 0: none)', 'max_call_duration', { type: 'number', min: 0, max: 86400, value: s.max_call_duration, required: true }),
    field('Hang up without RTP after (s, 0: never)', 'no_rtp_timeout', { type: 'number', min: 0, max: 3600, value: s.no_rtp_timeout, required: true }),
    field('Session timers (RFC 4028)', 'session_timers', { type: 'checkbox', value: s.session_timers }),
    field('Session interval (s)', 'session_expires', { type: 'number', min: 90, max: 7200, value: s.session_expires, required: true }),
    field('Min-SE (s)', 'session_min_se', { type: 'number', min: 90, max: 7200, value: s.session_min_se, required: true }),
  ], (f) => {
    const v = formValues(f);
    for (const k of kCallNumbers) v[k] = Number(v[k]);
    return v;
  });
  mount(h('h1', {}, 'Settings'),
    h('div.card', {}, realm,
      h('p.muted', {}, 'Extensions keep the realm their password was set under until their password changes.')),
    h('div.card', {}, h('h2', {}, 'Calls'), calls,
      h('p.muted', {}, 'Changes apply to the next call.')));
}
