/**
 * The contract between the view and the panel widget: what the components
 * may ask for and what they are given. The components only render; the
 * widget wires these actions to the store.
 */

import { VersionPolicy } from '../api';
import { SnippetKind } from '../snippets';
import { IPanelState } from '../store';

/** What the view can ask for; the panel widget wires these to the store. */
export interface IViewActions {
  refresh(): void;
  reloadConfig(): void;
  /** An empty `basePath` lets the server use `{models_root}/{name}`. */
  load(name: string, basePath: string, policy: VersionPolicy): void;
  unload(name: string): void;
  /** Load `name` again with `latest:1` (after a rollback pinned a version). */
  serveLatest(name: string, basePath: string): void;
  rollback(name: string): void;
  setLabel(name: string, label: string, version: number): void;
  removeLabel(name: string, label: string): void;
  copySnippet(name: string, kind: SnippetKind): void;
  dismiss(scope: string): void;
}

/** The props of the components that need the whole panel state. */
export interface IViewProps {
  state: IPanelState;
  actions: IViewActions;
}
