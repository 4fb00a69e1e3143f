// Both nodes of the pair, and the admin's switchover and maintenance buttons.
import { api } from '../api.js';
import { h, mount, dl, badge, every, when, confirmDialog, errorLine, showError } from '../ui.js';

export async function render({ me }) {
  const view = h('div#cluster', {}, 'Loading…');
  const err = errorLine();
  const actions = h('div.actions', {});
  mount(h('h1', {}, 'Cluster'), view, actions, err);

  async function act(question, path, body) {
    if (!(await confirmDialog(question))) return;
    showError(err, null);
    try {
      await api('POST', path, body);
    } catch (e) {
      showError(err, e);
    }
  }

  return every(2000, async () => {
    const s = await api('GET', '/status');
    const c = s.cluster;
    if (!c) {
      view.replaceChildren(h('p.card', {}, `${s.node_name} runs alone: there is no peer, VIP or witness. `,
        'Add a [cluster] section to its bootstrap file to make it half of a pair.'));
      return;
    }
    view.replaceChildren(h('div.grid', {},
      h('div.card', {}, h('h2', {}, `${s.node_name} (this node)`), dl([
        ['Role', h('span#this-role', {}, badge(s.role))], ['Why', s.role_reason || '—'],
        ['Epoch', h('span#this-epoch', {}, s.epoch)], ['Last sequence', s.last_seq]])),
      h('div.card', {}, h('h2', {}, `${c.peer.name || 'peer'} (peer)`), dl([
        ['Role', h('span#peer-role', {}, c.peer.alive ? badge(c.peer.role) : h('span.bad', {}, 'not heard'))],
        ['Epoch', c.peer.epoch], ['Last sequence', c.peer.last_seq],
        ['Heartbeat RTT', `${c.hb_rtt_ms.toFixed(2)} ms`]]))),
    h('div.card', {}, dl([
      ['Replication lag', `${c.lag_seqs} seq, ${c.lag_ms.toFixed(1)} ms`],
      ['Degraded', c.degraded ? h('span.bad', {}, `since ${when(c.degraded_since_unix)}`) : 'no'],
      ['Virtual IP', c.vip || '—'], ['VIP owner', c.vip_owner || '—'], ['Witness', c.witness],
      ['Last failover', h('span#last-failover', {}, c.last_failover.unix ? `${when(c.last_failover.unix)}: ${c.last_failover.reason}` : 'none')],
    ])));
    if (me.role !== 'admin') return;
    const maintenance = s.role === 'maintenance';
    actions.replaceChildren(
      h('button#switchover', { on: { click: () => act(
        `Hand the active role from ${s.node_name} to ${c.peer.name || 'the peer'}? Calls stay up; nothing is lost.`,
        '/cluster/switchover') } }, 'Switch over'),
      h('button.secondary#maintenance', { on: { click: () => act(
        maintenance ? `Take ${s.node_name} out of maintenance?` : `Put ${s.node_name} in maintenance (it stops serving)?`,
        '/cluster/maintenance', { on: !maintenance }) } }, maintenance ? 'Leave maintenance' : 'Maintenance'));
  });
}
