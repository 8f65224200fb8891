/**
 * The TF Serving panel in a real JupyterLab, with the real server extension:
 * serve a model through the management API, see it in the panel with its
 * signature, unload it from the panel and see it go.
 *
 * Jupyter runs with its XSRF check on, so every request the panel makes must
 * carry JupyterLab's XSRF header, as `ServerConnection.makeRequest` adds it.
 */
import {
  expect,
  IJupyterLabPageFixture,
  test as base
} from '@jupyterlab/galata';
import type { APIResponse } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

// Galata makes a working folder for each test with requests that carry no
// XSRF header. These tests need no files: no folder, and the page opens on
// the server's root.
const test = base.extend<{ tmpPath: string }>({
  tmpPath: async ({}, use) => use('')
});
// Galata's mock of `api/me` would also answer `tfserve/api/metrics`: no mocks of the server here.
test.use({ autoGoto: false, mockUser: false });
test.beforeEach(async ({ page }) => {
  await page.goto('?reset');
});

const LAB_URL = (process.env.TFSERVE_LAB_URL ?? '').replace(/\/*$/, '/');
const MODELS = process.env.TFSERVE_MODELS_ROOT ?? '';
const REST_PORT = process.env.TFSERVE_REST_PORT ?? '';
const ARTIFACTS =
  process.env.TFSERVE_ARTIFACTS ??
  path.resolve(__dirname, '..', '..', 'test-artifacts');
const PANEL = '#jp-tfserve-panel';

/** A call to `{base_url}{route}` from the test, authenticated like the page (cookie + XSRF header). */
async function api(
  page: IJupyterLabPageFixture,
  method: string,
  route: string,
  data?: unknown
): Promise<APIResponse> {
  const xsrf = (await page.context().cookies()).find(
    c => c.name === '_xsrf'
  )?.value;
  return page.request.fetch(LAB_URL + route, {
    method,
    data,
    headers: xsrf ? { 'X-XSRFToken': xsrf } : {}
  });
}

/** JupyterLab's notification toast that says `text` (an updated toast keeps the class of its first kind). */
function toast(page: IJupyterLabPageFixture, text: string | RegExp) {
  return page.locator('.Toastify__toast').filter({ hasText: text });
}

async function modelNames(page: IJupyterLabPageFixture): Promise<string[]> {
  const response = await api(page, 'GET', 'tfserve/api/models');
  expect(response.ok()).toBe(true);
  return ((await response.json()).models as { name: string }[]).map(
    m => m.name
  );
}

test('serve a model, see it in the panel, unload it from the panel', async ({
  page
}) => {
  expect(
    MODELS,
    'TFSERVE_MODELS_ROOT must name the test model directory'
  ).not.toBe('');

  // 1. Serve a small model through the management API.
  const load = await api(page, 'POST', 'tfserve/api/models', {
    name: 'half_plus_two',
    base_path: path.join(MODELS, 'half_plus_two')
  });
  expect(load.status(), await load.text()).toBeLessThan(300);

  // 2. Open the panel and see the model AVAILABLE, with its signature.
  await page.sidebar.openTab('jp-tfserve-panel');
  const panel = page.locator(PANEL);
  await expect(panel).toBeVisible();
  const card = panel.locator('[data-model="half_plus_two"]');
  await expect(
    card.locator('.jp-TfServe-model-header .jp-TfServe-badge')
  ).toHaveText('AVAILABLE');
  await expect(card.locator('[data-tensor="in:x"] td')).toHaveText([
    'in',
    'x',
    'float',
    '[?, 1]'
  ]);
  await expect(card.locator('[data-tensor="out:y"] td')).toHaveText([
    'out',
    'y',
    'float',
    '[?, 1]'
  ]);

  // Where the server listens, and that it runs inside Jupyter.
  const info = panel.locator('.jp-TfServe-info');
  await expect(info).toContainText('Embedded in Jupyter');
  await expect(info).toContainText(`REST :${REST_PORT}`);

  // What the panel shows as AVAILABLE answers predictions, and the panel counts them.
  const predict = await api(
    page,
    'POST',
    'tfserve/v1/models/half_plus_two:predict',
    {
      instances: [[1.0], [2.0]]
    }
  );
  expect(await predict.json()).toEqual({ predictions: [[2.5], [3.0]] });
  const numbers = card.locator('.jp-TfServe-stats dd');
  await expect(numbers.nth(0)).not.toHaveText('0'); // req/s
  await expect(numbers.nth(1)).toHaveText(/^[\d.]+ ms$/); // p50

  // A model that cannot load shows its error where the user looks.
  await panel.locator('.jp-TfServe-load summary').click();
  const form = panel.locator('.jp-TfServe-load form');
  const loadButton = form.getByRole('button', { name: 'Load' });
  await expect(loadButton).toBeDisabled();
  await form.getByLabel('Name').fill('broken');
  await form.getByLabel('Base path').fill(path.join(MODELS, 'broken'));
  await expect(loadButton).toBeEnabled();
  await expect(loadButton).toHaveClass(/jp-TfServe-primary/); // filled: it reads as pressable
  await loadButton.click();
  const broken = panel.locator('[data-model="broken"]');
  await expect(
    broken.locator('.jp-TfServe-model-header .jp-TfServe-badge')
  ).toHaveText('ERROR');
  await expect(toast(page, /broken did not load: version 1: /)).toBeVisible();
  await expect(
    broken.locator('.jp-TfServe-versions [role="alert"]')
  ).toContainText('broken/1');

  // Its policy, and the version that answers requests naming none.
  const policy = card.locator('.jp-TfServe-policy-line');
  await expect(policy).toHaveText(
    'policy latest:1 · requests without a version → v1'
  );

  // Steer it: point a label at the serving version (listed once), copy a snippet;
  // a rollback with no older version on disk is refused, and the card says why.
  await card.getByLabel('New label for half_plus_two').fill('stable');
  await card.getByRole('button', { name: 'Set label' }).click();
  await expect(card.locator('[data-label="stable"]')).toHaveText(
    /^stable → v1/
  );
  await expect(card.locator('.jp-TfServe-versions')).not.toContainText(
    'stable'
  );
  await card.getByRole('button', { name: 'curl' }).click();
  await expect(
    toast(page, 'Copied a curl example for half_plus_two')
  ).toBeVisible();
  await card.getByRole('button', { name: 'Roll back' }).click();
  await expect(card.locator('.jp-TfServe-message-error')).toContainText(
    'half_plus_two'
  );

  // Version 2 arrives on disk and replaces version 1 (latest:1); the label left on v1 is flagged.
  fs.cpSync(
    path.join(MODELS, 'half_plus_two', '1'),
    path.join(MODELS, 'half_plus_two', '2'),
    {
      recursive: true
    }
  );
  await expect(policy).toHaveText(
    'policy latest:1 · requests without a version → v2'
  );
  await expect(card.locator('[data-label="stable"]')).toHaveText(
    /stable → v1 \(not available\)/
  );

  // A rollback: one toast that turns from "Rolling back…" into "Rolled back" once v1 serves,
  // nothing left in the card; then "Serve latest" undoes the pin.
  await card.locator('.jp-TfServe-message [aria-label="Dismiss"]').click();
  await card.getByRole('button', { name: 'Roll back' }).click();
  await expect(
    toast(page, 'Rolled half_plus_two back to version 1')
  ).toBeVisible();
  await expect(policy).toHaveText(
    'policy specific:1 · requests without a version → v1'
  );
  await expect(card.getByRole('button', { name: 'Roll back' })).toBeEnabled();
  await expect(card.locator('.jp-TfServe-message')).toHaveCount(0);
  await expect(card.locator('[data-label="stable"]')).not.toContainText(
    'not available'
  );
  await card.getByRole('button', { name: 'Serve latest' }).click();
  await expect(toast(page, 'Serving half_plus_two version 2')).toBeVisible();
  await expect(policy).toHaveText(
    'policy latest:1 · requests without a version → v2'
  );
  await expect(card.getByRole('button', { name: 'Serve latest' })).toHaveCount(
    0
  );

  await panel.locator('.jp-TfServe-load summary').click(); // fold the form away for the picture
  await panel.screenshot({ path: path.join(ARTIFACTS, 'sidebar.png') });
  await page.theme.setDarkTheme();
  await panel.screenshot({ path: path.join(ARTIFACTS, 'sidebar-dark.png') });
  await page.theme.setLightTheme();

  // 3. Unload it from the panel (after confirming) and see it go.
  await card.getByRole('button', { name: 'Unload' }).click();
  await page
    .locator('.jp-Dialog')
    .getByRole('button', { name: 'Unload' })
    .click();
  await expect(toast(page, 'Unloaded half_plus_two')).toBeVisible();
  await expect(card).toHaveCount(0);
  expect(await modelNames(page)).not.toContain('half_plus_two');
});

test("the panel's tab icon is its own, not the table of contents' look-alike", async ({
  page
}) => {
  const icon = (id: string) =>
    page.locator(`.jp-SideBar [data-id="${id}"] svg`).first().innerHTML();
  expect(await icon('jp-tfserve-panel')).not.toEqual(
    await icon('table-of-contents')
  );
});

test('the palette opens the panel', async ({ page }) => {
  await page.sidebar.close('left');
  await expect(page.locator(PANEL)).toBeHidden();
  await page.keyboard.press('Control+Shift+C');
  const palette = page.locator('#command-palette');
  await palette.locator('.lm-CommandPalette-input').fill('TF Serving');
  const items = palette.locator(
    '.lm-CommandPalette-item:not(.lm-mod-hidden) .lm-CommandPalette-itemLabel'
  );
  await expect(items).toContainText([
    'TF Serving: Open panel',
    'TF Serving: Reload config'
  ]);
  await items.filter({ hasText: 'TF Serving: Open panel' }).click();
  await expect(page.locator(PANEL)).toBeVisible();
});

test('the launcher has a card that opens the panel', async ({ page }) => {
  await page.sidebar.close('left');
  await expect(page.locator(PANEL)).toBeHidden();
  await page.menu.clickMenuItem('File>New Launcher');
  // Only the launcher in the current tab is visible (JupyterLab may have opened one at start too).
  const card = page
    .locator('.jp-Launcher:visible .jp-LauncherCard')
    .filter({ hasText: 'TF Serving' });
  await expect(card).toHaveCount(1);
  await card.click();
  await expect(page.locator(PANEL)).toBeVisible();
});
