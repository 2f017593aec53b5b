/**
 * The fixes as the editor names them — the quick-fix menu (server) and the notifications (client)
 * alike — and the fix ids the server claims output names for before it knows the scan's fixes.
 * Plain data, so the client names fixes without bundling the engine.
 */

/** Fixes with a short name of their own; every other fix prunes the channels of the neuron method it is named after. */
const SHORT_NAMES: Readonly<Record<string, string>> = { auto: 'Repair', bna: 'BNA correction', unlearn: 'Unlearn the trigger', 'adv-unlearn': 'Unlearn adversarial perturbations' };

/** A fix's short name: 'Repair', 'BNA correction', 'Unlearn the trigger', or 'Prune with BNP' for a neuron method. */
export function fixTitle(method: string): string {
  return SHORT_NAMES[method] ?? `Prune with ${method.toUpperCase()}`;
}

/** Whether the fix has a short name of its own (else fixTitle names it for pruning). */
export function hasShortName(method: string): boolean {
  return Object.hasOwn(SHORT_NAMES, method);
}

/** Every fix id, cheapest first as engine/fixes/registry.ts orders them (test/architecture holds the two equal). */
export const FIX_IDS: readonly string[] = ['clp', 'bnp', 'ep', 'fp', 'bna', 'adv-unlearn', 'unlearn', 'anp'];
