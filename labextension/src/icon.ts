import { LabIcon } from '@jupyterlab/ui-components';

import tfserveSvg from '../style/icons/tfserve.svg';

/** The sidebar tab's icon; `jp-icon3` fills follow the theme. */
export const tfserveIcon = new LabIcon({
  name: 'jupyter-tfserve:icon',
  svgstr: tfserveSvg
});
