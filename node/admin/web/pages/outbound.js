// Outbound call control (FEATURES.md 5.6, 5.7, 5.9): dial rules (outbound routes with their
// pattern rows, prefix strip and prepend, ordered trunks), dial permissions and PIN sets.
import { crudSection, namesOf } from './crud.js';
import { tabbedPage } from './tabs.js';

const join = (list) => (list && list.length ? list.join(', ') : '—');

export async function render() {
  return tabbedPage('Outbound routes', [
    {
      id: 'outbound', title: 'Dial rules',
      render: (root) => crudSection(root, {
        id: 'outbound', path: '/routes/outbound', noun: 'route',
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'rules', label: 'Dial rules: prefix (stripped), pattern, prepend', kind: 'rows', objects: true, rowLabel: 'rule',
            cols: [{ name: 'prefix', label: 'prefix', size: 6 }, { name: 'pattern', label: 'pattern', size: 14 }, { name: 'prepend', label: 'prepend', size: 6 }] },
          { name: 'trunks', label: 'Trunks, in order', kind: 'rows', rowLabel: 'trunk',
            cols: [{ name: 'trunk', label: 'trunk', options: namesOf('/trunks', 'name', 'trunks') }] },
          { name: 'caller_id', label: 'Caller ID' },
          { name: 'time_limit', label: 'Call time limit (s, 0: none)', kind: 'number', min: 0, max: 3600 },
          { name: 'time_condition', label: 'Only in working hours of', kind: 'select', options: namesOf('/time-conditions', 'name', 'items', true) },
          { name: 'pin_set', label: 'PIN set', kind: 'select', options: namesOf('/pin-sets', 'name', 'items', true) },
        ],
        columns: [
          ['Name', (r) => r.name],
          ['Rules', (r) => r.rules.map((x) => `${x.prefix ? `${x.prefix}|` : ''}${x.pattern}${x.prepend ? ` +${x.prepend}` : ''}`).join(', ')],
          ['Trunks', (r) => r.trunks.join(' → ')], ['Caller ID', (r) => r.caller_id || '—'],
          ['Limit', (r) => (r.time_limit ? `${r.time_limit} s` : '—')],
          ['Time condition', (r) => r.time_condition || '—'], ['PIN set', (r) => r.pin_set || '—'],
        ],
      }),
    },
    {
      id: 'permissions', title: 'Dial permissions',
      render: (root) => crudSection(root, {
        id: 'permission', path: '/permissions', noun: 'permission',
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'enabled', label: 'Enabled', kind: 'checkbox', default: true },
          { name: 'routes', label: 'Dial rules allowed', kind: 'rows', rowLabel: 'rule',
            cols: [{ name: 'route', label: 'route', options: namesOf('/routes/outbound') }] },
        ],
        columns: [['Name', (p) => p.name], ['Enabled', (p) => (p.enabled ? 'yes' : 'no')], ['Dial rules', (p) => join(p.routes)]],
      }),
    },
    {
      id: 'pinsets', title: 'PIN sets',
      render: (root) => crudSection(root, {
        id: 'pinset', path: '/pin-sets', noun: 'PIN set',
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'pins', label: 'PINs (3-8 digits)', kind: 'rows', rowLabel: 'PIN', cols: [{ name: 'pin', label: 'PIN', size: 8 }] },
        ],
        columns: [['Name', (p) => p.name], ['PINs', (p) => `${p.pins.length}`]],
      }),
    },
  ]);
}
