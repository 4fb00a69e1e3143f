// Web and API accounts (admin only). Extension users are extensions with web login on.
import { api } from '../api.js';
import { h, mount, table, field, formValues, confirmDialog, errorLine, showError, when } from '../ui.js';

const ROLES = ['operator', 'admin', 'api'];

export async function render({ me }) {
  const list = h('div#user-list', {});
  const err = errorLine();
  const createErr = errorLine();
  const form = h('form.inline#user-create', {},
    field('Name', 'name', { required: true }),
    field('Role', 'role', { options: ROLES, value: 'operator' }),
    field('Password', 'password', { type: 'password', required: true, autocomplete: 'new-password' }),
    h('button', { type: 'submit' }, 'Add user'), createErr);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(createErr, null);
    try {
      await api('POST', '/users', formValues(form));
      form.reset();
      await refresh();
    } catch (e) {
      showError(createErr, e);
    }
  });
  mount(h('h1', {}, 'Users'), h('div.card', {}, h('h2', {}, 'New user'), form), err, list);

  async function change(user, body, question) {
    if (question && !(await confirmDialog(question))) return;
    showError(err, null);
    try {
      if (body === null) await api('DELETE', `/users/${encodeURIComponent(user.name)}`);
      else await api('PUT', `/users/${encodeURIComponent(user.name)}`, body);
      await refresh();
    } catch (e) {
      showError(err, e);
    }
  }

  function row(u) {
    const role = field('', 'role', { options: ROLES, value: u.role }).querySelector('select');
    role.addEventListener('change', () => change(u, { role: role.value }, `Make ${u.name} ${role.value}?`));
    const pw = h('input', { type: 'password', autocomplete: 'new-password' });
    return h('tr', { 'data-user': u.name }, h('td', {}, u.name), h('td', {}, role), h('td', {}, when(u.created_unix)),
      h('td.actions', {}, pw,
        h('button.secondary', { on: { click: () => change(u, { password: pw.value }) } }, 'Set password'),
        u.name === me.user ? null
          : h('button.danger', { on: { click: () => change(u, null, `Delete user ${u.name}?`) } }, 'Delete')));
  }

  async function refresh() {
    const r = await api('GET', '/users');
    list.replaceChildren(table(['Name', 'Role', 'Created', ''], r.users, row));
  }
  await refresh();
}
