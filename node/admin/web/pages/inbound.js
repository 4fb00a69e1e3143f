// Inbound call control (FEATURES.md 4.3-4.5, 4.7): inbound routes per trunk and office
// pause, DID routes, time conditions and the blacklist. Destinations are the types the node
// validates (crud.js destinationTypes).
import { api } from '../api.js';
import { h, field, errorLine, showError, when } from '../ui.js';
import { crudSection, namesOf, destinationText, destinationTypes } from './crud.js';
import { tabbedPage } from './tabs.js';

const DAYS = 'sun, mon, tue, wed, thu, fri, sat';

// Block anonymous calls and office pause (routing settings), above the per-trunk routes.
async function settingsForm() {
  const [s, types] = await Promise.all([api('GET', '/routing-settings'), destinationTypes()]);
  const err = errorLine();
  const saved = h('span.ok', {});
  const d = s.office_pause_destination;
  const type = h('select', { name: 'pause_type' }, types.map((t) => h('option', { value: t, selected: d && d.type === t }, t)));
  const id = h('input', { name: 'pause_id', value: d ? d.id : '', size: 10 });
  const form = h('form.inline.card#routing-settings', {},
    field('Block anonymous calls', 'block_anonymous', { type: 'checkbox', value: s.block_anonymous }),
    field('Office pause: all inbound calls go to', 'office_pause', { type: 'checkbox', value: s.office_pause }),
    h('label', {}, 'Pause destination', h('span.inline', {}, type, id)),
    h('button', { type: 'submit' }, 'Save'), saved, err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    saved.textContent = '';
    try {
      await api('PUT', '/routing-settings', {
        block_anonymous: form.block_anonymous.checked,
        office_pause: form.office_pause.checked,
        office_pause_destination: { type: type.value, id: type.value === 'hangup' ? '' : id.value.trim() },
      });
      saved.textContent = 'Saved.';
    } catch (e) {
      showError(err, e);
    }
  });
  return form;
}

const destinationField = (name, label, optional = false) => ({ name, label, kind: 'destination', optional });

export async function render() {
  return tabbedPage('Inbound routes', [
    {
      id: 'inbound', title: 'Inbound routes',
      render: async (root) => {
        const routes = h('div', {});
        root.replaceChildren(await settingsForm(), routes);
        return crudSection(routes, {
          id: 'inbound', path: '/routes/inbound', key: 'trunk', noun: 'inbound route',
          fields: [
            { name: 'trunk', label: 'Trunk', kind: 'select', options: namesOf('/trunks', 'name', 'trunks') },
            destinationField('destination', 'Destination'),
          ],
          columns: [['Trunk', (r) => r.trunk], ['Destination', (r) => destinationText(r.destination)]],
        });
      },
    },
    {
      id: 'dids', title: 'DID routes',
      render: (root) => crudSection(root, {
        id: 'did', path: '/dids', noun: 'DID route',
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'trunk', label: 'Trunk (blank: any)', kind: 'select', options: namesOf('/trunks', 'name', 'trunks', true) },
          { name: 'did_pattern', label: 'Called DID pattern' },
          { name: 'caller_pattern', label: 'Caller number pattern' },
          destinationField('destination', 'Destination'),
        ],
        columns: [['Name', (r) => r.name], ['Trunk', (r) => r.trunk || 'any'], ['DID', (r) => r.did_pattern || '—'],
          ['Caller', (r) => r.caller_pattern || '—'], ['Destination', (r) => destinationText(r.destination)]],
      }),
    },
    {
      id: 'timeconditions', title: 'Time conditions',
      render: (root) => crudSection(root, {
        id: 'timecondition', path: '/time-conditions', noun: 'time condition',
        fields: [
          { name: 'name', label: 'Name' },
          { name: 'working', label: `Working hours: days (${DAYS}), start, end`, kind: 'rows', objects: true, rowLabel: 'range',
            cols: [{ name: 'days', label: 'mon,tue,…', split: true, size: 18 }, { name: 'start', label: '09:00', size: 5 }, { name: 'end', label: '18:00', size: 5 }] },
          { name: 'holidays', label: 'Holidays: first, last day', kind: 'rows', objects: true, rowLabel: 'holiday',
            cols: [{ name: 'first', label: 'YYYY-MM-DD', size: 10 }, { name: 'last', label: 'YYYY-MM-DD', size: 10 }] },
          destinationField('when_working', 'In working hours'),
          destinationField('when_closed', 'Outside working hours'),
          destinationField('when_holiday', 'On holidays (none: as outside)', true),
        ],
        columns: [['Name', (t) => t.name],
          ['Working', (t) => t.working.map((w) => `${w.days.join(',')} ${w.start}-${w.end}`).join('; ') || '—'],
          ['Holidays', (t) => `${t.holidays.length}`], ['Working →', (t) => destinationText(t.when_working)],
          ['Closed →', (t) => destinationText(t.when_closed)], ['Holiday →', (t) => destinationText(t.when_holiday)]],
      }),
    },
    {
      id: 'blacklist', title: 'Blacklist',
      render: (root) => crudSection(root, {
        id: 'blacklist', path: '/blacklist', key: 'number', noun: 'blacklisted number', noEdit: true,
        fields: [{ name: 'number', label: 'Number (digits, + ; a trailing * for a prefix)' }],
        columns: [['Number', (b) => b.number], ['Added by', (b) => b.creator || '—'], ['Added', (b) => when(b.created_unix)]],
      }),
    },
  ]);
}
