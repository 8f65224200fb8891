/**
 * The prefix of every CSS class the panel uses. Its rules live in
 * style/base.css and take colours and spacing from JupyterLab's CSS
 * variables, so the panel follows the light and the dark theme.
 */
export const CLASS = 'jp-TfServe';
