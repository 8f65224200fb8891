/**
 * The sidebar widget: renders the store's state and turns clicks into store
 * actions, asking before anything that stops a model from serving.
 *
 * Visibility drives polling: the store polls only while this widget is
 * visible, and showing it refreshes at once, so an opened panel is never
 * stale and a closed one costs the server nothing.
 */

import {
  Clipboard,
  Dialog,
  Notification,
  ReactWidget,
  UseSignal,
  showDialog
} from '@jupyterlab/apputils';
import { ITranslator, TranslationBundle } from '@jupyterlab/translation';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { TfServeClient } from './api';
import { IViewActions } from './components/actions';
import { PanelView } from './components/PanelView';
import { panelStrings, TranslationContext } from './components/translation';
import { tfserveIcon } from './icon';
import { IEndpoint, SNIPPET_LABELS, SnippetKind, snippet } from './snippets';
import { IPanelState, Notifier, TfServeStore } from './store';

export const PANEL_ID = 'jp-tfserve-panel';

/** How an action ended, as a JupyterLab notification: successes close themselves, errors stay until closed. */
export const notify: Notifier = outcome =>
  void Notification.emit(outcome.text, outcome.kind, {
    autoClose: outcome.kind === 'success' ? 4000 : false
  });

export interface IPanelOptions {
  client?: TfServeClient;
  pollInterval?: number;
  /** The application's translator; without one the panel reads as written. */
  translator?: ITranslator;
}

export class TfServePanel extends ReactWidget {
  constructor(options: IPanelOptions = {}) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-TfServe');
    this._trans = panelStrings(options.translator);
    this.title.icon = tfserveIcon;
    this.title.caption = this._trans.__('TF Serving');
    this.store = new TfServeStore({
      client: options.client ?? new TfServeClient(),
      pollInterval: options.pollInterval,
      isVisible: () => this.isVisible,
      notifier: notify
    });
    void this.store.start();
  }

  readonly store: TfServeStore;
  private readonly _trans: TranslationBundle;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.store.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.store.refresh();
  }

  render(): JSX.Element {
    return (
      <TranslationContext.Provider value={this._trans}>
        <UseSignal signal={this.store.changed} initialArgs={this.store.state}>
          {(_, state) => (
            <PanelView state={state as IPanelState} actions={this._actions} />
          )}
        </UseSignal>
      </TranslationContext.Provider>
    );
  }

  /** Where snippets send requests: this page's server, seen from the user's machine. */
  private _endpoint(): IEndpoint {
    return {
      origin: window.location.origin,
      baseUrl:
        this.store.client.serverSettings.baseUrl.replace(
          window.location.origin,
          ''
        ) || '/',
      host: window.location.hostname || 'localhost'
    };
  }

  private async _confirmUnload(name: string): Promise<void> {
    const result = await showDialog({
      title: this._trans.__('Unload %1?', name),
      body: this._trans.__(
        'Clients calling this model will get "not found" until it is loaded again.'
      ),
      buttons: [
        Dialog.cancelButton({ label: this._trans.__('Cancel') }),
        Dialog.warnButton({ label: this._trans.__('Unload') })
      ]
    });
    if (result.button.accept) {
      await this.store.unload(name);
    }
  }

  private _copy(name: string, kind: SnippetKind): void {
    const model = this.store.state.models.find(m => m.name === name);
    if (!model) {
      return;
    }
    Clipboard.copyToSystem(
      snippet(kind, model, this.store.state.info, this._endpoint())
    );
    this.store.note(
      `Copied a ${SNIPPET_LABELS[kind]} example for ${name} to the clipboard`
    );
  }

  private _actions: IViewActions = {
    refresh: () => void this.store.refresh(),
    reloadConfig: () => void this.store.reloadConfig(),
    load: (name, basePath, policy) =>
      void this.store.load(
        basePath ? { name, base_path: basePath, policy } : { name, policy }
      ),
    unload: name => void this._confirmUnload(name),
    serveLatest: (name, basePath) =>
      void this.store.load({
        name,
        base_path: basePath,
        policy: { latest: { num_versions: 1 } }
      }),
    rollback: name => void this.store.rollback(name),
    setLabel: (name, label, version) =>
      void this.store.setLabel(name, label, version),
    removeLabel: (name, label) => void this.store.removeLabel(name, label),
    copySnippet: (name, kind) => this._copy(name, kind),
    dismiss: scope => this.store.dismiss(scope)
  };
}
