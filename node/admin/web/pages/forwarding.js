// Call forward, follow-me and DND of one extension (FEATURES.md §7.1, §7.2): one form for
// the portal (`/me/forwarding`) and for the admin's extension page
// (`/extensions/N/forwarding`). The node checks every field and names the one it refuses.
import { api } from '../api.js';
import { h, field, errorLine, showError } from '../ui.js';

const RULES = [['always', 'Forward always'], ['busy', 'Forward when busy'], ['no_answer', 'Forward on no answer']];
const DND_CODES = ['486', '480', '603'];

// "2003:20, 0612345678:25" ⇄ [{number, ring_seconds}]
function listText(numbers) {
  return numbers.map((n) => `${n.number}:${n.ring_seconds}`).join(', ');
}
function parseList(text) {
  return text.split(',').map((s) => s.trim()).filter((s) => s).map((s) => {
    const [number, secs] = s.split(':').map((x) => x.trim());
    return secs === undefined ? { number } : { number, ring_seconds: Number(secs) };
  });
}

// {node, load}: the form, and a function that fills it from the node.
export function forwardingForm(path, id) {
  const err = errorLine();
  const saved = h(`p.ok#${id}-saved`, {});
  const form = h(`form.inline#${id}`, {});
  async function load() {
    const f = await api('GET', path);
    form.replaceChildren(
      field('Do not disturb', 'dnd', { type: 'checkbox', value: f.dnd }),
      field('DND answer', 'dnd_status', { options: DND_CODES, value: String(f.dnd_status) }),
      ...RULES.map(([key, label]) => h('fieldset', {}, h('legend', {}, label),
        field('Active', `${key}_active`, { type: 'checkbox', value: f[key].active }),
        field('Number', `${key}_number`, { value: f[key].number, inputmode: 'tel', title: 'an extension, or an external number with its outbound prefix' }))),
      field('Ring time before no-answer forward (s, 0: system)', 'ring_seconds', { type: 'number', min: 0, max: 300, value: f.ring_seconds }),
      h('fieldset', {}, h('legend', {}, 'Follow-me'),
        field('Enabled', 'fm_enabled', { type: 'checkbox', value: f.follow_me.enabled }),
        field('Ring my extension (s)', 'fm_ring', { type: 'number', min: 5, max: 300, value: f.follow_me.ring_seconds }),
        field('Then (number:seconds, …)', 'fm_numbers', { value: listText(f.follow_me.numbers), title: 'e.g. 2003:20, 90612345678:25' })),
      h('button', { type: 'submit' }, 'Save forwarding'), err);
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError(err, null);
    saved.textContent = '';
    const v = (name) => form.elements[name];
    const body = {
      dnd: v('dnd').checked,
      dnd_status: Number(v('dnd_status').value),
      ring_seconds: Number(v('ring_seconds').value),
      follow_me: { enabled: v('fm_enabled').checked, ring_seconds: Number(v('fm_ring').value), numbers: parseList(v('fm_numbers').value) },
    };
    for (const [key] of RULES) body[key] = { active: v(`${key}_active`).checked, number: v(`${key}_number`).value.trim() };
    try {
      await api('PUT', path, body);
      saved.textContent = 'Forwarding saved.';
    } catch (e) {
      showError(err, e);
    }
  });
  return { node: h('div', {}, form, saved), load };
}
