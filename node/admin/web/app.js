// The web admin: which node this is, who is logged in, and which page to show.
import { api, login, logout } from './api.js';
import { h, mount, dl, badge, errorLine, showError, every } from './ui.js';
import * as dashboard from './pages/dashboard.js';
import * as cluster from './pages/cluster.js';
import * as extensions from './pages/extensions.js';
import * as trunks from './pages/trunks.js';
import * as outbound from './pages/outbound.js';
import * as inbound from './pages/inbound.js';
import * as cdr from './pages/cdr.js';
import * as security from './pages/security.js';
import * as users from './pages/users.js';
import * as settings from './pages/settings.js';
import * as audit from './pages/audit.js';
import * as backup from './pages/backup.js';
import * as certificate from './pages/certificate.js';
import * as portal from './pages/portal.js';

// Pages in menu order, and the roles that see them (FEATURES.md §16; the API checks again).
const PAGES = [
  { path: 'dashboard', title: 'Dashboard', page: dashboard, roles: ['admin', 'operator', 'api'] },
  { path: 'cluster', title: 'Cluster', page: cluster, roles: ['admin', 'operator', 'api'] },
  { path: 'extensions', title: 'Extensions', page: extensions, roles: ['admin', 'operator', 'api'] },
  { path: 'trunks', title: 'Trunks', page: trunks, roles: ['admin', 'operator', 'api'] },
  { path: 'outbound', title: 'Outbound routes', page: outbound, roles: ['admin', 'operator', 'api'] },
  { path: 'inbound', title: 'Inbound routes', page: inbound, roles: ['admin', 'operator', 'api'] },
  { path: 'cdr', title: 'Call records', page: cdr, roles: ['admin', 'operator', 'api'] },
  { path: 'security', title: 'Security', page: security, roles: ['admin', 'operator', 'api'] },
  { path: 'users', title: 'Users', page: users, roles: ['admin'] },
  { path: 'settings', title: 'Settings', page: settings, roles: ['admin'] },
  { path: 'certificate', title: 'Certificate', page: certificate, roles: ['admin'] },
  { path: 'backup', title: 'Backup', page: backup, roles: ['admin'] },
  { path: 'audit', title: 'Audit log', page: audit, roles: ['admin'] },
  { path: 'portal', title: 'My extension', page: portal, roles: ['extension'] },
];

let me = null;       // {user, role} once logged in
let stopPage = null; // what the current page needs to stop (polling)

function pagesFor(role) {
  return PAGES.filter((p) => p.roles.includes(role));
}

function renderNav() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!me) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const current = location.hash.slice(2);
  nav.replaceChildren(...pagesFor(me.role).map((p) =>
    h(`a${p.path === current ? '.active' : ''}`, { href: `#/${p.path}` }, p.title)));
  who.replaceChildren(`${me.user} (${me.role}) `,
    h('button.secondary#logout', { on: { click: onLogout } }, 'Log out'));
}

async function onLogout() {
  try { await logout(); } catch (e) { /* the session may have expired already */ }
  me = null;
  history.replaceState(null, '', location.pathname);
  showLogin();
}

function showLogin() {
  if (stopPage) stopPage();
  stopPage = null;
  renderNav();
  const err = errorLine();
  const form = h('form#login-form', {},
    h('label', {}, 'User name or extension', h('input', { name: 'username', autocomplete: 'username', required: true })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, 'Log in'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    try {
      const r = await login(form.username.value, form.password.value);
      me = { user: r.user, role: r.role };
      history.replaceState(null, '', `#/${pagesFor(me.role)[0].path}`);
      route();
    } catch (e) {
      showError(err, e);
    }
  });
  mount(h('div.login.card', {}, h('h1', {}, 'Log in'), form));
}

// A node that does not serve (standby, isolated, maintenance) shows only where it stands
// and where the active node is; it reloads into the admin pages if it starts serving.
function showNotServing(info) {
  // Both nodes of a pair serve the admin on the same port, so the VIP's is this page's.
  const host = info.vip && info.vip.includes(':') ? `[${info.vip}]` : info.vip;
  const target = info.vip ? `https://${host}${location.port ? `:${location.port}` : ''}/` : null;
  const body = h('div#standby.card', {});
  const render = (i) => body.replaceChildren(
    h('h1', {}, `Node ${i.node_name} is ${i.role}`),
    h('p', {}, 'This node does not serve the admin pages now; changes are made on the active node.'),
    dl([['Node', i.node_name], ['Role', badge(i.role)], ['Virtual IP', i.vip || '—'],
        ['VIP held by', i.vip_owner || '—']]),
    target ? h('p', {}, 'Go to the active node: ', h('a#vip-link', { href: target }, target)) : null);
  render(info);
  mount(body);
  stopPage = every(2000, async () => {
    const i = await api('GET', '/web/info');
    if (i.serving) location.reload();
    render(i);
  });
}

async function route() {
  if (stopPage) stopPage();
  stopPage = null;
  if (!me) return showLogin();
  const allowed = pagesFor(me.role);
  const path = location.hash.slice(2);
  const entry = allowed.find((p) => p.path === path) || allowed[0];
  if (entry.path !== path) {
    history.replaceState(null, '', `#/${entry.path}`);
  }
  renderNav();
  document.title = `${entry.title} · PBX admin`;
  try {
    stopPage = (await entry.page.render({ me })) || null;
  } catch (e) {
    if (e.status === 401) { me = null; return showLogin(); }
    mount(h('p.error', {}, e.message));
  }
}

async function start() {
  const info = await api('GET', '/web/info');
  document.getElementById('top').querySelector('.brand').textContent = `PBX · ${info.node_name}`;
  if (!info.serving) return showNotServing(info);
  try {
    const r = await api('GET', '/me');
    me = { user: r.user, role: r.role };
  } catch (e) {
    if (e.status !== 401) throw e;
  }
  window.addEventListener('hashchange', route);
  route();
}

start().catch((e) => mount(h('p.error', {}, `Cannot reach the node: ${e.message}`)));
