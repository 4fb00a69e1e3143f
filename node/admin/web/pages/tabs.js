// A page of several sections, one shown at a time (a seed menu with its sub-pages).
import { h, mount } from '../ui.js';

// sections: [{id, title, render(root) => stopper or null}]. Returns the page's stopper.
export async function tabbedPage(title, sections) {
  const body = h('div', {});
  let stop = null;
  const buttons = sections.map((s) => h(`button.secondary.tab#tab-${s.id}`, { type: 'button', on: { click: () => show(s) } }, s.title));
  async function show(s) {
    if (stop) stop();
    stop = null;
    buttons.forEach((b) => b.classList.toggle('active', b.id === `tab-${s.id}`));
    const root = h(`div#${s.id}`, {});
    body.replaceChildren(h('h2', {}, s.title), root);
    stop = await s.render(root);
  }
  mount(h('h1', {}, title), h('div.inline.tabs', {}, buttons), body);
  await show(sections[0]);
  return () => { if (stop) stop(); };
}
