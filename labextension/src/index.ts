/**
 * The jupyter-tfserve JupyterLab plugin: a "TF Serving" panel in the left
 * sidebar, two commands in the palette, and a launcher card that opens the panel.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ITranslator } from '@jupyterlab/translation';

import { DEFAULT_TIMEOUT_MS, TfServeClient } from './api';
import { panelStrings } from './components/translation';
import { tfserveIcon } from './icon';
import { PANEL_ID, TfServePanel } from './panel';

const PLUGIN_ID = 'jupyter-tfserve:plugin';

export namespace CommandIDs {
  export const open = 'tfserve:open-panel';
  export const reloadConfig = 'tfserve:reload-config';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'See and steer the models served by jupyter-tfserve.',
  autoStart: true,
  optional: [
    ICommandPalette,
    ILayoutRestorer,
    ISettingRegistry,
    ILauncher,
    ITranslator
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    settingRegistry: ISettingRegistry | null,
    launcher: ILauncher | null,
    translator: ITranslator | null
  ) => {
    const trans = panelStrings(translator ?? undefined);
    const client = new TfServeClient({
      serverSettings: app.serviceManager.serverSettings
    });
    const panel = new TfServePanel({
      client,
      translator: translator ?? undefined
    });
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(CommandIDs.open, {
      label: args =>
        args.isLauncher
          ? trans.__('TF Serving')
          : trans.__('TF Serving: Open panel'),
      caption: trans.__('Show the served models'),
      describedBy: {
        args: {
          type: 'object',
          properties: {
            isLauncher: {
              type: 'boolean',
              description: trans.__('Label the command for the launcher card')
            }
          }
        }
      },
      icon: tfserveIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.reloadConfig, {
      label: trans.__('TF Serving: Reload config'),
      caption: trans.__('Re-read the model config file and realize it'),
      describedBy: { args: { type: 'object', properties: {} } },
      execute: async () => {
        // A success is notified by the store; a refusal is shown in the panel, which may be closed.
        if (!(await panel.store.reloadConfig())) {
          Notification.error(
            panel.store.state.messages.panel?.text ??
              trans.__('The config was not reloaded'),
            {
              autoClose: false
            }
          );
        }
      }
    });
    palette?.addItem({
      command: CommandIDs.open,
      category: trans.__('TF Serving')
    });
    palette?.addItem({
      command: CommandIDs.reloadConfig,
      category: trans.__('TF Serving')
    });
    // Where new users look first: the launcher's "Other" section opens the panel.
    launcher?.add({
      command: CommandIDs.open,
      category: trans.__('Other'),
      rank: 50,
      args: { isLauncher: true }
    });

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            const seconds = settings.get('pollIntervalSeconds')
              .composite as number;
            const timeout = settings.get('requestTimeoutSeconds')
              .composite as number;
            panel.store.pollInterval = Math.max(0.5, seconds) * 1000;
            client.timeoutMs =
              Math.max(1, timeout) * 1000 || DEFAULT_TIMEOUT_MS;
          };
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason =>
          console.error('jupyter-tfserve: cannot read settings', reason)
        );
    }
  }
};

export default plugin;
