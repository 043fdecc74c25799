/* The two DOM builders every view uses: a page without a framework builds its nodes with these. */

/** A `tag` element with `className` (none when empty) holding `children` (nodes or strings, as append takes). */
export function element(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

/** A <button type="button"> (never a form's submit) that calls `onClick`. */
export function button(className, text, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}
