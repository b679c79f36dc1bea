/**
 * Per-report CSS rules in place of `style="…"` attributes: the report's Content-Security-Policy allows only the
 * one hashed <style> element (no 'unsafe-inline'), so positions and colours computed from the data become classes
 * collected here and written into that element. Declarations are built from numbers and constants only.
 */
export class RuleSet {
  private readonly rules = new Map<string, string>();

  /** A class carrying these declarations (the same declarations share one class). */
  cls(declarations: string): string {
    let name = this.rules.get(declarations);
    if (!name) {
      name = `k${this.rules.size.toString(36)}`;
      this.rules.set(declarations, name);
    }
    return name;
  }

  css(): string {
    return [...this.rules].map(([d, n]) => `.${n}{${d}}`).join('\n');
  }
}
