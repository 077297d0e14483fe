// The web console's small charts: success rate and response time over an
// endpoint's recent deliveries, as inline SVG (no library).

import { el, num, statusOf } from './ui.js';

// `deliveries`: attempted deliveries, oldest first. A paragraph saying so
// when there are fewer than two.
export function deliveryCharts(deliveries) {
  if (deliveries.length < 2) {
    return el('p', { className: 'hint charts-empty' }, 'Charts appear after two deliveries.');
  }
  let succeeded = 0;
  // The running success rate: of the first i + 1 deliveries.
  const rates = deliveries.map((d, i) => {
    if (statusOf(d) === 'success') succeeded++;
    return (100 * succeeded) / (i + 1);
  });
  const times = deliveries.map((d) => num(d.responseTimeMs));
  const maxTime = Math.max(...times, 1);
  const rate = rates[rates.length - 1].toFixed(0);
  const statuses = deliveries.map(statusOf);
  const n = deliveries.length;
  return el('div', { className: 'charts' },
    sparkline(rates, 100, statuses, `Success rate over the last ${n} deliveries, now ${rate}%`,
              'Success rate', `${rate}%`),
    sparkline(times, maxTime, statuses,
              `Response time over the last ${n} deliveries, at most ${maxTime} ms`,
              'Response time', `≤ ${maxTime} ms`));
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// A line from 0 to `max`, a dot per value coloured by its status.
function sparkline(values, max, statuses, label, title, caption) {
  const width = 160;
  const height = 40;
  const pad = 4;
  const x = (i) => (pad + (i * (width - 2 * pad)) / (values.length - 1)).toFixed(1);
  const y = (v) => (height - pad - (v / max) * (height - 2 * pad)).toFixed(1);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img',
                             'aria-label': label });
  const heading = svg('title', {});
  heading.textContent = label;
  chart.append(heading,
    svg('line', { x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, class: 'axis' }),
    svg('polyline', { points: values.map((v, i) => `${x(i)},${y(v)}`).join(' '), class: 'trend' }),
    ...values.map((v, i) => svg('circle', { cx: x(i), cy: y(v), r: 2, class: `dot ${statuses[i]}` })));
  return el('figure', { className: 'chart' }, chart,
            el('figcaption', {}, `${title} `, el('strong', {}, caption)));
}
