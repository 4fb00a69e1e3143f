// System settings (admin only): what the store holds today.
import { api } from '../api.js';
import { h, mount, field, formValues, errorLine, showError } from '../ui.js';

export async function render() {
  const s = await api('GET', '/settings');
  const err = errorLine();
  const saved = h('p.ok#settings-saved', {});
  const form = h('form.inline#settings-form', {},
    field('SIP realm', 'sip_realm', { value: s.sip_realm, required: true }),
    h('button', { type: 'submit' }, 'Save'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    saved.textContent = '';
    try {
      await api('PUT', '/settings', formValues(form));
      saved.textContent = 'Saved.';
    } catch (e) {
      showError(err, e);
    }
  });
  mount(h('h1', {}, 'Settings'), h('div.card', {}, form,
    h('p.muted', {}, 'Extensions keep the realm their password was set under until their password changes.')), saved);
}
