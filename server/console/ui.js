// Small DOM, formatting and dialog helpers shared by the web console's
// parts.

export const $ = (id) => document.getElementById(id);

// proto3 JSON leaves zero values out: read numbers with a default.
export const num = (value) => Number(value || 0);

// el('td', {className: 'x', dataset: {label: 'y'}}, child, 'text', ...)
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name.startsWith('aria') || name === 'role') node.setAttribute(ariaName(name), value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function ariaName(name) {
  return name === 'role' ? name : `aria-${name.slice(4).toLowerCase()}`;
}

export function button(text, onClick, props) {
  const node = el('button', Object.assign({ type: 'button' }, props), text);
  node.addEventListener('click', onClick);
  return node;
}

export function showError(node, message) {
  node.textContent = message || '';
  node.hidden = !message;
}

function formatTime(timestamp) {
  if (!timestamp) return '';
  const date = new Date(timestamp);
  return date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function timeElement(timestamp) {
  return timestamp ? el('time', { dateTime: timestamp }, formatTime(timestamp)) : '';
}

const STATUS = {
  DELIVERY_STATUS_PENDING: 'pending',
  DELIVERY_STATUS_RETRYING: 'retrying',
  DELIVERY_STATUS_SUCCESS: 'success',
  DELIVERY_STATUS_FAILED: 'failed',
};

export function statusOf(delivery) { return STATUS[delivery.status] || 'unknown'; }

export function statusBadge(delivery) {
  const status = statusOf(delivery);
  return el('span', { className: `badge ${status}` }, status);
}

// Opens a modal dialog (Escape closes it, trapFocus keeps the focus in it)
// and gives the focus back to what had it when it closes.
export function openDialog(dialog, focus) {
  const opener = document.activeElement;
  dialog.addEventListener('close', () => {
    if (opener && opener.isConnected) opener.focus();
  }, { once: true });
  dialog.showModal();
  if (focus) focus.focus();
}

const FOCUSABLE = 'button, input, textarea, select, a[href], [tabindex]:not([tabindex="-1"])';

// Tab from the last control goes to the first, Shift+Tab from the first to
// the last: focus stays in the modal (the browser would let it leave to its
// own toolbar).
function trapFocus(event) {
  if (event.key !== 'Tab') return;
  const controls = [...event.currentTarget.querySelectorAll(FOCUSABLE)]
    .filter((node) => !node.disabled && node.getClientRects().length > 0);
  if (controls.length === 0) return;
  const first = controls[0];
  const last = controls[controls.length - 1];
  const inside = event.currentTarget.contains(document.activeElement);
  if (event.shiftKey && (document.activeElement === first || !inside)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
    event.preventDefault();
    first.focus();
  }
}

// Every dialog of the page: the focus trap, and its [data-close] buttons.
export function setUpDialogs() {
  for (const dialog of document.querySelectorAll('dialog')) {
    dialog.addEventListener('keydown', trapFocus);
    for (const close of dialog.querySelectorAll('[data-close]')) {
      close.addEventListener('click', () => dialog.close());
    }
  }
}
