// The audit log (admin only): every change made through the API, newest first.
import { api } from '../api.js';
import { h, mount, table } from '../ui.js';

export async function render() {
  const r = await api('GET', '/audit?limit=200');
  mount(h('h1', {}, 'Audit log'), table(['When', 'User', 'Role', 'From', 'Action', 'Object', 'Detail'],
    r.entries, (a) => h('tr', {}, h('td', {}, new Date(a.unix_ms).toLocaleString()), h('td', {}, a.user),
      h('td', {}, a.role), h('td', {}, a.source), h('td', {}, a.action), h('td', {}, a.target), h('td', {}, a.detail))));
}
