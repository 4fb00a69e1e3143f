// System status of this node and of the pair, the calls in progress and the registrations,
// refreshed every 2 s.
import { api } from '../api.js';
import { h, mount, dl, badge, table, every, when } from '../ui.js';
import { registrationTable } from './registrations.js';

function uptime(started) {
  const s = Math.max(0, Math.floor(Date.now() / 1000) - started);
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function duration(fromUnix) {
  const s = Math.max(0, Math.floor(Date.now() / 1000) - fromUnix);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

// Talking time once answered, else time since the call started.
function callTable(calls) {
  if (calls.length === 0) return h('p.muted', {}, 'No call in progress.');
  return table(['Caller', 'Callee', 'State', 'Duration'], calls, (c) => h('tr', { 'data-call': c.id },
    h('td', {}, c.caller_name ? `${c.caller} (${c.caller_name})` : c.caller), h('td', {}, c.callee),
    h('td', {}, badge(c.state)), h('td', {}, duration(c.answer_unix || c.start_unix))));
}

export async function render() {
  const node = h('div.card#node-status', {}, 'Loading…');
  const pair = h('div.card#pair-status', {});
  const calls = h('div#calls', {});
  const regs = h('div#registrations', {});
  const updated = h('p.muted#updated', {});
  mount(h('h1', {}, 'Dashboard'), h('div.grid', {}, node, pair),
    h('h2', {}, 'Calls in progress ', h('span.badge#call-count', {}, '…')), calls,
    h('h2', {}, 'Registrations ', h('span.badge#reg-count', {}, '…')), regs, updated);
  return every(2000, async () => {
    try {
      // /calls is 503 while SIP is not running: the rest of the page still shows.
      const [s, r, live] = await Promise.all([api('GET', '/status'), api('GET', '/registrations'),
        api('GET', '/calls').catch((e) => ({ error: e }))]);
      node.replaceChildren(h('h2', {}, 'This node'), dl([
        ['Name', s.node_name], ['Role', badge(s.role)], ['Version', s.version],
        ['Epoch', s.epoch], ['Last sequence', s.last_seq], ['Up', uptime(s.started_unix)],
        ['Extensions', s.counts.extensions],
      ]));
      const c = s.cluster;
      pair.replaceChildren(h('h2', {}, 'The pair'), c ? dl([
        ['Peer', c.peer.name || '—'], ['Peer role', c.peer.alive ? badge(c.peer.role) : h('span.bad', {}, 'not heard')],
        ['Replication lag', `${c.lag_seqs} seq, ${c.lag_ms.toFixed(1)} ms`],
        ['Degraded', c.degraded ? h('span.bad', {}, `since ${when(c.degraded_since_unix)}`) : 'no'],
        ['VIP owner', c.vip_owner || '—'],
      ]) : h('p.muted', {}, 'Single node: no [cluster] in its bootstrap file.'));
      document.getElementById('call-count').textContent = live.error ? '—' : `${live.calls.length}`;
      calls.replaceChildren(live.error ? h('p.muted', {}, live.error.message) : callTable(live.calls));
      document.getElementById('reg-count').textContent = `${r.registrations.length}`;
      regs.replaceChildren(registrationTable(r.registrations));
      updated.className = 'muted';
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      updated.textContent = `Cannot read the status: ${e.message}`;
      updated.className = 'error';
    }
  });
}
