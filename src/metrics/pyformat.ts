/**
 * Python's `str.format` for the only form protocol templates use: named fields `{name}`, with `{{` and `}}`
 * as literal braces. A judge model was trained on text rendered by Python, so a template read from a
 * Python package must render here to the same bytes. Anything beyond that subset (positional `{}`/`{0}`,
 * `{a.b}`, `{a[0]}`, conversions `!r`, format specs `:>8`) is refused with the template's own offset
 * rather than rendered differently from Python. Substituted values are never scanned again, as in Python.
 */
export function formatPy(template: string, values: Readonly<Record<string, string>>, what = 'template'): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    const close = template.indexOf('}', i);
    if (open < 0 && close < 0) {
      out += template.slice(i);
      break;
    }
    if (close >= 0 && (open < 0 || close < open)) {
      // A `}` outside a field: Python accepts only its doubled form.
      if (template[close + 1] !== '}')
        throw new Error(`${what}: single '}' at offset ${close} (Python's str.format refuses it; write '}}')`);
      out += template.slice(i, close) + '}';
      i = close + 2;
      continue;
    }
    out += template.slice(i, open);
    if (template[open + 1] === '{') {
      out += '{';
      i = open + 2;
      continue;
    }
    const end = template.indexOf('}', open + 1);
    if (end < 0) throw new Error(`${what}: '{' at offset ${open} is never closed`);
    const field = template.slice(open + 1, end);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field))
      throw new Error(
        `${what}: field "{${field}}" at offset ${open} is not a plain name; only {name} fields are supported`,
      );
    const value = Object.hasOwn(values, field) ? values[field] : undefined;
    if (value === undefined) throw new Error(`${what}: no value for field "{${field}}"`);
    out += value;
    i = end + 1;
  }
  return out;
}
