// SIP trunks (FEATURES.md 5.3): the list with each trunk's live state (registered, failed
// with the last response, unreachable), create, edit and delete, in register or peer mode.
import { h, mount, badge, when } from '../ui.js';
import { crudSection } from './crud.js';

const CODECS = ['PCMU', 'PCMA', 'G722', 'G726', 'GSM'];

function status(t) {
  const s = t.status || {};
  const parts = [badge(s.state || 'unknown')];
  if (s.last_code) parts.push(' ', h('span.muted', {}, `${s.last_code} ${s.last_reason || ''}`.trim()));
  if (s.state === 'registered' && s.expires_unix) parts.push(' ', h('span.muted', {}, `until ${when(s.expires_unix)}`));
  if (s.qualify_ok !== undefined) parts.push(' ', s.qualify_ok ? h('span.ok', {}, `ok ${s.qualify_rtt_ms} ms`) : h('span.bad', {}, 'no answer'));
  return h('span.trunk-status', {}, parts);
}

export const FIELDS = [
  { name: 'name', label: 'Name' },
  { name: 'enabled', label: 'Enabled', kind: 'checkbox', default: true },
  { name: 'mode', label: 'Mode', kind: 'select', options: ['register', 'peer'] },
  { name: 'host', label: 'Host (carrier)', size: 24 },
  { name: 'port', label: 'Port', kind: 'number', min: 1, max: 65535 },
  { name: 'transport', label: 'Transport', kind: 'select', options: ['udp', 'tcp', 'tls'] },
  { name: 'username', label: 'Username' },
  { name: 'auth_user', label: 'Auth user (blank: username)' },
  { name: 'password', label: 'Password', kind: 'password' },
  { name: 'domain', label: 'Domain (blank: host)' },
  { name: 'outbound_proxy', label: 'Outbound proxy' },
  { name: 'codecs', label: 'Codecs', kind: 'multi', options: CODECS, default: ['PCMA', 'PCMU'] },
  { name: 'dtmf_mode', label: 'DTMF', kind: 'select', options: ['rfc4733', 'info', 'inband', 'auto'] },
  { name: 'cli_mode', label: 'Caller ID from', kind: 'select', options: ['trunk', 'extension'] },
  { name: 'outbound_cli', label: 'Outbound caller ID' },
  { name: 'max_calls', label: 'Max calls (0: no limit)', kind: 'number', min: 0, max: 10000 },
  { name: 'no_answer_timeout', label: 'No-answer timeout (s)', kind: 'number', min: 0, max: 600 },
  { name: 'expiry', label: 'Registration expiry (s)', kind: 'number', min: 10, max: 86400 },
  { name: 'refresh_percent', label: 'Refresh at (% of expiry)', kind: 'number', min: 10, max: 95 },
  { name: 'retry_interval', label: 'Retry after (s)', kind: 'number', min: 1, max: 3600 },
  { name: 'max_retries', label: 'Max retries (0: forever)', kind: 'number', min: 0, max: 10000 },
  { name: 'qualify_interval', label: 'Qualify every (s, 0: off)', kind: 'number', min: 0, max: 3600 },
  { name: 'new_call_id_per_register', label: 'New Call-ID per REGISTER', kind: 'checkbox' },
];

export async function render() {
  const root = h('div#trunks', {});
  mount(h('h1', {}, 'Trunks'), root);
  return crudSection(root, {
    id: 'trunk', path: '/trunks', listKey: 'trunks', noun: 'trunk', fields: FIELDS, poll: 2000,
    columns: [
      ['Name', (t) => t.name], ['Mode', (t) => t.mode],
      ['Host', (t) => `${t.host}:${t.port} (${t.transport})`], ['Username', (t) => t.username || '—'],
      ['Codecs', (t) => t.codecs.join(', ')], ['Status', status],
    ],
  });
}
