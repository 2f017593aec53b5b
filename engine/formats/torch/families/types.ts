/** The shape of a family's module converters (families/*.ts), keyed by qualified class name. */
import type { TemplateBuilder } from '../../templates/builder';
import type { Flow } from '../convert-helpers';
import type { ModuleNode } from '../modules';

/** Runs any module (a child) as its forward() does: convert.ts's dispatcher, handed down. */
export type Run = (m: ModuleNode, x: Flow) => Flow;

/** Builds one module of an allowlisted class on x, as the class's forward() runs in eval mode. */
export type Converter = (b: TemplateBuilder, m: ModuleNode, x: Flow, run: Run) => Flow;

/** A family's converters by qualified class name ('torchvision.models.regnet.RegNet'). */
export type Converters = Record<string, Converter>;
