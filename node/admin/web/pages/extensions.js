// Extensions: list, create, edit, delete (FEATURES.md §3.2; the API validates every field).
import { api } from '../api.js';
import { h, mount, table, field, formValues, confirmDialog, errorLine, showError, every } from '../ui.js';
import { byNumber, expiresIn, qualify } from './registrations.js';
import { forwardingForm } from './forwarding.js';

const TRANSPORTS = ['udp', 'tcp', 'tls'];

function editor(ext, onDone) {
  const creating = !ext;
  const err = errorLine();
  const form = h(`form.inline#${creating ? 'ext-create' : 'ext-edit'}`, {},
    creating ? field('Number', 'number', { required: true, pattern: '[0-9]{2,11}' }) : null,
    field('Name', 'name', { value: ext ? ext.name : '', required: true }),
    field(creating ? 'Password' : 'New password (blank: keep)', 'password', { type: 'password', required: creating, autocomplete: 'new-password' }),
    field('Email', 'email', { type: 'email', value: ext ? ext.email : '' }),
    field('Transport', 'transport', { options: TRANSPORTS, value: ext ? ext.transport : 'udp' }),
    field('Max registrations', 'max_contacts', { type: 'number', min: 1, max: 10, value: ext ? ext.max_contacts : 1 }),
    field('Voicemail', 'voicemail', { type: 'checkbox', value: ext ? ext.voicemail : true }),
    field('Web login (portal)', 'web_login', { type: 'checkbox', value: ext ? ext.web_login : false }),
    h('button', { type: 'submit' }, creating ? 'Add extension' : 'Save'),
    creating ? null : h('button.secondary', { type: 'button', on: { click: () => onDone() } }, 'Cancel'),
    err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    const body = formValues(form, !creating);
    if (creating && body.email === '') delete body.email;
    if (!creating && body.email === undefined) body.email = '';
    body.max_contacts = Number(body.max_contacts);
    try {
      if (creating) await api('POST', '/extensions', body);
      else await api('PUT', `/extensions/${ext.number}`, body);
      onDone();
    } catch (e) {
      showError(err, e);
    }
  });
  return form;
}

export async function render() {
  const list = h('div#ext-list', {});
  const edit = h('div.card#ext-editor', {});
  const err = errorLine();
  mount(h('h1', {}, 'Extensions'), edit, err, list);

  const showCreate = () => edit.replaceChildren(h('h2', {}, 'New extension'), editor(null, refresh));

  async function remove(ext) {
    if (!(await confirmDialog(`Delete extension ${ext.number} (${ext.name})?`))) return;
    try {
      await api('DELETE', `/extensions/${ext.number}`);
      await refresh();
    } catch (e) {
      showError(err, e);
    }
  }

  async function showForwarding(x) {
    const f = forwardingForm(`/extensions/${x.number}/forwarding`, 'ext-forwarding');
    edit.replaceChildren(h('h2', {}, `Forwarding of ${x.number}`), f.node,
      h('button.secondary', { type: 'button', on: { click: () => showCreate() } }, 'Close'));
    try {
      await f.load();
    } catch (e) {
      showError(err, e);
    }
  }

  async function refresh() {
    showCreate();
    const r = await api('GET', '/extensions');
    list.replaceChildren(table(['Number', 'Name', 'Email', 'Transport', 'Max reg.', 'Web login', 'Registration', ''],
      r.extensions, (x) => h('tr', { 'data-number': x.number },
        h('td', {}, x.number), h('td', {}, x.name), h('td', {}, x.email), h('td', {}, x.transport),
        h('td', {}, x.max_contacts), h('td', {}, x.web_login ? 'yes' : 'no'), h('td.reg', {}, '…'),
        h('td.actions', {},
          h('button.secondary', { on: { click: () => edit.replaceChildren(h('h2', {}, `Edit ${x.number}`), editor(x, refresh)) } }, 'Edit'),
          h('button.secondary', { on: { click: () => showForwarding(x) } }, 'Forwarding'),
          h('button.danger', { on: { click: () => remove(x) } }, 'Delete')))));
    showRegistrations(lastRegs);
  }
  // Each row's registration state, live (the list itself changes only by this page's edits).
  let lastRegs = [];
  function showRegistrations(regs) {
    lastRegs = regs;
    const contacts = byNumber(regs);
    for (const row of list.querySelectorAll('tr[data-number]')) {
      const mine = contacts[row.dataset.number] || [];
      const cell = row.querySelector('td.reg');
      if (mine.length === 0) cell.replaceChildren(h('span.muted', {}, 'not registered'));
      else cell.replaceChildren(h('span.ok', {}, `registered (${mine.length})`), ' · ',
        expiresIn(Math.min(...mine.map((c) => c.expires_in))), ' · ', qualify(mine[0]));
    }
  }

  await refresh();
  return every(2000, async () => {
    try {
      showRegistrations((await api('GET', '/registrations')).registrations);
    } catch (e) {
      showError(err, e);
    }
  });
}
