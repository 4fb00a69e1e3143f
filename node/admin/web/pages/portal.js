// The extension user portal (FEATURES.md §16): what the data model lets a user change on
// their own extension today, and their call log (the node picks whose calls from the
// session), call forward / follow-me / DND. Voicemail comes with that feature.
import { api } from '../api.js';
import { h, mount, dl, field, formValues, errorLine, showError } from '../ui.js';
import { cdrSearch } from './cdr.js';
import { forwardingForm } from './forwarding.js';

export async function render() {
  const r = await api('GET', '/me');
  const x = r.extension;
  const err = errorLine();
  const saved = h('p.ok#portal-saved', {});
  const form = h('form.inline#portal-form', {},
    field('Email', 'email', { type: 'email', value: x.email }),
    field('Voicemail', 'voicemail', { type: 'checkbox', value: x.voicemail }),
    field('Voicemail PIN (blank: keep)', 'voicemail_pin', { type: 'password', inputmode: 'numeric', autocomplete: 'off' }),
    field('New SIP/web password (blank: keep)', 'password', { type: 'password', autocomplete: 'new-password' }),
    h('button', { type: 'submit' }, 'Save'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    saved.textContent = '';
    const body = formValues(form, true);
    if (body.email === undefined) body.email = '';
    try {
      await api('PUT', '/me', body);
      saved.textContent = 'Saved.';
    } catch (e) {
      showError(err, e);
    }
  });
  const forwarding = forwardingForm('/me/forwarding', 'portal-forwarding');
  const calls = cdrSearch('/me/cdr', true);
  mount(h('h1', {}, `Extension ${x.number}`),
    h('div.card', {}, dl([['Name', x.name], ['Transport', x.transport], ['Max registrations', x.max_contacts]])),
    h('div.card', {}, h('h2', {}, 'My settings'), form), saved,
    h('div.card', {}, h('h2', {}, 'Call forward, follow-me, DND'), forwarding.node),
    h('h2', {}, 'My calls'), calls.node);
  await forwarding.load();
  await calls.search();
}
