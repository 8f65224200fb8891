/**
 * The panel's words go through JupyterLab's translator, so a language pack
 * for `jupyter_tfserve` can translate them. The panel widget provides the
 * application's bundle; without a provider (unit tests, no translator) the
 * strings read as written.
 */

import {
  ITranslator,
  nullTranslator,
  TranslationBundle
} from '@jupyterlab/translation';
import * as React from 'react';

/** The gettext domain of the panel's strings: the Python package's name. */
export const TRANSLATION_DOMAIN = 'jupyter_tfserve';

/** The panel's strings in the user's language, from `translator` or as written. */
export function panelStrings(translator?: ITranslator): TranslationBundle {
  return (translator ?? nullTranslator).load(TRANSLATION_DOMAIN);
}

export const TranslationContext: React.Context<TranslationBundle> =
  React.createContext(panelStrings());

/** The bundle the components translate with: `trans.__('text')`. */
export function useTranslation(): TranslationBundle {
  return React.useContext(TranslationContext);
}
