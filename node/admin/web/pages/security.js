// Intrusion protection (FEATURES.md 13.2-13.4): the bans, live, with "lift" (admin,
// operator, api), and for the admin the ban policy and the IP allow and deny lists.
import { api } from '../api.js';
import { h, mount, table, field, confirmDialog, errorLine, showError, every, when } from '../ui.js';

// One IP address or CIDR network per line (or separated by commas or spaces).
function lines(text) {
  return text.split(/[\s,]+/).filter((x) => x !== '');
}

function policyForm(s) {
  const err = errorLine();
  const saved = h('p.ok#security-saved', {});
  const form = h('form#security-form', {},
    h('div.inline', {},
      field('Ban sources that fail authentication', 'ban_enabled', { type: 'checkbox', value: s.ban_enabled }),
      field('Never ban private (RFC 1918) sources', 'ban_trust_private', { type: 'checkbox', value: s.ban_trust_private })),
    h('div.inline', {},
      field('Failures before a ban', 'ban_max_retries', { type: 'number', min: 1, max: 100, value: s.ban_max_retries, required: true }),
      field('… within (seconds)', 'ban_find_time', { type: 'number', min: 1, max: 86400, value: s.ban_find_time, required: true }),
      field('Ban for (hours)', 'ban_hours', { type: 'number', min: 0.02, max: 720, step: 'any', value: s.ban_time / 3600, required: true })),
    h('div.inline', {},
      h('label', {}, 'Allow list: never banned (one IP or CIDR a line)',
        h('textarea', { name: 'ip_allow', rows: 4 }, s.ip_allow.join('\n'))),
      h('label', {}, 'Deny list: always dropped (one IP or CIDR a line)',
        h('textarea', { name: 'ip_deny', rows: 4 }, s.ip_deny.join('\n')))),
    h('button', { type: 'submit' }, 'Save'), err, saved);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    saved.textContent = '';
    try {
      await api('PUT', '/settings', {
        ban_enabled: form.ban_enabled.checked,
        ban_trust_private: form.ban_trust_private.checked,
        ban_max_retries: Number(form.ban_max_retries.value),
        ban_find_time: Number(form.ban_find_time.value),
        ban_time: Math.round(Number(form.ban_hours.value) * 3600),
        ip_allow: lines(form.ip_allow.value),
        ip_deny: lines(form.ip_deny.value),
      });
      saved.textContent = 'Saved.';
    } catch (e) {
      showError(err, e);
    }
  });
  return form;
}

export async function render({ me }) {
  const bans = h('div#bans', {}, 'Loading…');
  const err = errorLine();
  const policy = h('div.card', {});
  mount(h('h1', {}, 'Security'), h('h2', {}, 'Banned sources'), err, bans, policy);
  if (me.role === 'admin') {
    policy.replaceChildren(h('h2', {}, 'Intrusion protection'), policyForm(await api('GET', '/settings')));
  } else {
    policy.replaceChildren(h('p.muted', {}, 'The ban policy and the allow and deny lists are the admin\'s.'));
  }

  async function lift(ip) {
    if (!(await confirmDialog(`Lift the ban of ${ip}? It may register again at once.`))) return;
    try {
      await api('DELETE', `/bans/${ip}`);
      await refresh();
    } catch (e) {
      showError(err, e);
    }
  }

  // Rebuilt only when the bans change, so that a "Lift" button is not replaced under the cursor.
  let shown = null;
  async function refresh() {
    const r = await api('GET', '/bans');
    const key = JSON.stringify(r.bans.map((b) => [b.ip, b.until_unix, b.failures]));
    if (key === shown) return;
    shown = key;
    bans.replaceChildren(r.bans.length === 0 ? h('p.muted', {}, 'No source is banned.')
      : table(['Source', 'Reason', 'Failures', 'Banned at', 'Until', ''], r.bans,
        (b) => h('tr', { 'data-ban': b.ip },
          h('td', {}, b.ip), h('td', {}, b.reason), h('td', {}, b.failures),
          h('td', {}, when(b.banned_unix)), h('td', {}, when(b.until_unix)),
          h('td.actions', {}, h('button.danger', { on: { click: () => lift(b.ip) } }, 'Lift')))));
  }
  return every(2000, async () => {
    try {
      await refresh();
    } catch (e) {
      showError(err, e);
    }
  });
}
