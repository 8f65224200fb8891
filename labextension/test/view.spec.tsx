import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';
import { act } from 'react';
import { createRoot, Root } from 'react-dom/client';

import { ApiError, ENABLE_COMMAND } from '../src/api';
import { IViewActions } from '../src/components/actions';
import { PanelView } from '../src/components/PanelView';
import {
  TRANSLATION_DOMAIN,
  TranslationContext
} from '../src/components/translation';
import { formatDuration, formatNumber, formatShape } from '../src/format';
import { parseInfo, parseModels } from '../src/model';
import { IPanelState } from '../src/store';
import * as fixtures from './fixtures';

// React's act() wants to know it runs in a test environment.
(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

const ready: IPanelState = {
  phase: 'ready',
  slow: false,
  error: null,
  info: parseInfo(fixtures.info),
  models: parseModels(fixtures.modelList),
  stats: {
    half_plus_two: {
      requestsPerSecond: 120,
      p50Ms: 2,
      p99Ms: 8,
      avgBatchSize: 4,
      queueDepth: 3
    }
  },
  pending: {},
  messages: {},
  updatedAt: 1
};

/** Records what the view asks for. */
function recorder(): { calls: unknown[][]; actions: IViewActions } {
  const calls: unknown[][] = [];
  const record =
    (name: string) =>
    (...args: unknown[]) => {
      calls.push([name, ...args]);
    };
  const actions: IViewActions = {
    refresh: record('refresh'),
    reloadConfig: record('reloadConfig'),
    load: record('load'),
    unload: record('unload'),
    serveLatest: record('serveLatest'),
    rollback: record('rollback'),
    setLabel: record('setLabel'),
    removeLabel: record('removeLabel'),
    copySnippet: record('copySnippet'),
    dismiss: record('dismiss')
  };
  return { calls, actions };
}

describe('PanelView', () => {
  let host: HTMLDivElement;
  let root: Root;

  beforeEach(() => {
    host = document.createElement('div');
    document.body.appendChild(host);
    root = createRoot(host);
  });

  afterEach(() => {
    act(() => root.unmount());
    host.remove();
  });

  const render = (state: IPanelState, actions = recorder().actions) => {
    act(() => root.render(<PanelView state={state} actions={actions} />));
  };
  const card = (name: string) =>
    host.querySelector(`[data-model="${name}"]`) as HTMLElement;
  const text = (el: Element | null) => el?.textContent ?? '';
  const button = (scope: Element, label: string) =>
    Array.from(scope.querySelectorAll('button')).find(
      b => b.textContent === label
    ) as HTMLButtonElement;
  const type = (input: HTMLInputElement | HTMLSelectElement, value: string) => {
    const proto = Object.getPrototypeOf(input);
    Object.getOwnPropertyDescriptor(proto, 'value')!.set!.call(input, value);
    input.dispatchEvent(
      new Event(input.tagName === 'SELECT' ? 'change' : 'input', {
        bubbles: true
      })
    );
  };

  it('shows a loading indicator, then says it is still waiting when slow', () => {
    render({ ...ready, phase: 'loading', models: [], info: null });
    expect(text(host.querySelector('[role="status"]'))).toBe('Loading models…');
    expect(host.querySelector('.jp-TfServe-spinner')).not.toBeNull();
    render({ ...ready, phase: 'loading', slow: true, models: [], info: null });
    expect(text(host.querySelector('[role="status"]'))).toContain(
      'Still waiting'
    );
  });

  it('explains a missing server extension with the fix, and shows nothing else', () => {
    const { calls, actions } = recorder();
    const error = new ApiError('missing-extension', 'missing', 404);
    render(
      {
        ...ready,
        phase: 'error',
        error,
        models: [],
        info: null,
        updatedAt: null
      },
      actions
    );
    const alert = host.querySelector('[role="alert"]')!;
    expect(alert.getAttribute('data-error-kind')).toBe('missing-extension');
    expect(text(alert.querySelector('pre'))).toBe(ENABLE_COMMAND);
    expect(host.querySelector('.jp-TfServe-load')).toBeNull();
    act(() => button(alert, 'Check again').click());
    expect(calls).toEqual([['refresh']]);
  });

  it('shows a failed refresh above the last data it had', () => {
    const error = new ApiError(
      'timeout',
      'The TF Serving server extension did not answer GET models within 10 s.'
    );
    render({ ...ready, phase: 'error', error });
    const alert = host.querySelector('[data-error-kind="timeout"]')!;
    expect(text(alert)).toContain('did not answer GET models within 10 s');
    expect(text(alert)).toContain('Showing what the server said at');
    expect(card('half_plus_two')).not.toBeNull();
  });

  it('offers to reload the config only when the server has a config file', () => {
    render(ready);
    expect(button(host, 'Reload config').disabled).toBe(true);
    render({
      ...ready,
      info: { ...ready.info!, modelConfigFile: '/etc/models.config' }
    });
    expect(button(host, 'Reload config').disabled).toBe(false);
    expect(button(host, 'Reload config').title).toContain('/etc/models.config');
  });

  it('shows server info: embedded, ports, uptime', () => {
    render(ready);
    const info = text(host.querySelector('.jp-TfServe-info'));
    expect(info).toContain('Embedded in Jupyter');
    expect(info).toContain('REST :8501');
    expect(info).toContain('gRPC :8500');
    expect(info).toContain('up 2 min');
  });

  it('shows a serving model: state, labels, numbers and signature', () => {
    render(ready);
    const hpt = card('half_plus_two');
    expect(text(hpt.querySelector('.jp-TfServe-model-header'))).toBe(
      'half_plus_twoAVAILABLE'
    );
    const versions = Array.from(
      hpt.querySelectorAll('.jp-TfServe-versions li')
    );
    expect(versions.map(text)).toEqual(['v2AVAILABLEtensorflow']); // v1 ended cleanly: not shown
    expect(text(versions[0].querySelector('.jp-TfServe-platform'))).toBe(
      'tensorflow'
    );
    // Labels are listed once, under Labels, not again beside the version.
    expect(text(hpt.querySelector('.jp-TfServe-labels'))).toContain(
      'stable → v2'
    );
    expect(text(hpt).split('stable').length - 1).toBe(1);
    expect(text(hpt.querySelector('.jp-TfServe-policy-line'))).toBe(
      'policy latest:1 · requests without a version → v2'
    );
    expect(text(hpt.querySelector('.jp-TfServe-stats'))).toBe(
      'req/s120p502 msp998 msbatch4queue3'
    );
    const rows = Array.from(
      hpt.querySelectorAll('.jp-TfServe-signature tr')
    ).map(tr => Array.from(tr.querySelectorAll('td')).map(text));
    expect(rows).toEqual([
      ['in', 'x', 'float', '[?, 1]'],
      ['out', 'y', 'float', '[?, 1]']
    ]);
  });

  it('says when a model logs its requests, and at what rate', () => {
    const logged = parseModels({
      models: [
        {
          ...fixtures.halfPlusTwo,
          logging: { enabled: true, sampling_rate: 0.1 }
        }
      ]
    });
    render({ ...ready, models: logged });
    expect(
      text(card('half_plus_two').querySelector('.jp-TfServe-policy-line'))
    ).toBe(
      'policy latest:1 · requests without a version → v2 · logging 10% of requests'
    );
  });

  it('warns about a label whose version does not answer, and offers to serve latest when pinned', () => {
    const { calls, actions } = recorder();
    const pinned = parseModels({
      models: [
        {
          ...fixtures.halfPlusTwo,
          policy: { specific: { versions: [2] } },
          labels: { stable: 2, canary: 3 }
        }
      ]
    });
    render({ ...ready, models: pinned }, actions);
    const hpt = card('half_plus_two');
    expect(text(hpt.querySelector('.jp-TfServe-policy-line'))).toBe(
      'policy specific:2 · requests without a version → v2'
    );
    const canary = hpt.querySelector('[data-label="canary"]') as HTMLElement;
    expect(canary.classList).toContain('jp-TfServe-label-warning');
    expect(text(canary)).toContain('canary → v3 (not available)');
    expect(canary.title).toBe(
      'v3 is not AVAILABLE: requests for label "canary" fail'
    );
    expect(hpt.querySelector('[data-label="stable"]')!.classList).not.toContain(
      'jp-TfServe-label-warning'
    );
    act(() => button(hpt, 'Serve latest').click());
    expect(calls).toEqual([
      ['serveLatest', 'half_plus_two', '/models/half_plus_two']
    ]);
    render(ready, actions); // latest:1 pins nothing
    expect(button(card('half_plus_two'), 'Serve latest')).toBeUndefined();
  });

  it('shows a failed model with its error code and message', () => {
    render(ready);
    const broken = card('broken');
    expect(text(broken.querySelector('.jp-TfServe-badge'))).toBe('ERROR');
    expect(text(broken.querySelector('[role="alert"]'))).toBe(
      'INVALID_ARGUMENT: SavedModel file does not exist at: /models/broken/3'
    );
    // Nothing serves, so there is nothing to copy or roll back to.
    expect(text(broken)).not.toContain('curl');
    expect(button(broken, 'Roll back').disabled).toBe(true);
  });

  it('shows request numbers alone when the server does not batch', () => {
    render({ ...ready, stats: { half_plus_two: { requestsPerSecond: 0 } } });
    expect(text(card('half_plus_two').querySelector('.jp-TfServe-stats'))).toBe(
      'req/s0p50—p99—'
    );
    render({ ...ready, stats: { half_plus_two: {} } });
    expect(card('half_plus_two').querySelector('.jp-TfServe-stats')).toBeNull();
  });

  it('shows a loading model as LOADING, without numbers', () => {
    render(ready);
    const big = card('big_model');
    expect(text(big.querySelector('.jp-TfServe-badge'))).toBe('LOADING');
    expect(big.querySelector('.jp-TfServe-stats')).toBeNull();
  });

  it('shows a source error of a model whose base path cannot be read', () => {
    const models = parseModels({
      models: [
        {
          ...fixtures.loading,
          versions: [],
          source_error: 'Could not find base path /nope'
        }
      ]
    });
    render({ ...ready, models });
    const model = card('big_model');
    expect(text(model.querySelector('.jp-TfServe-badge'))).toBe('NO VERSION');
    expect(text(model.querySelector('[role="alert"]'))).toBe(
      'Could not find base path /nope'
    );
  });

  it('wires the model actions', () => {
    const { calls, actions } = recorder();
    render(ready, actions);
    const hpt = card('half_plus_two');
    act(() => button(hpt, 'Unload').click());
    act(() => button(hpt, 'Roll back').click());
    act(() => button(hpt, 'curl').click());
    act(() =>
      (
        hpt.querySelector('[aria-label="Remove label stable"]') as HTMLElement
      ).click()
    );
    expect(calls).toEqual([
      ['unload', 'half_plus_two'],
      ['rollback', 'half_plus_two'],
      ['copySnippet', 'half_plus_two', 'curl'],
      ['removeLabel', 'half_plus_two', 'stable']
    ]);
  });

  it('sets a label on an available version', () => {
    const { calls, actions } = recorder();
    render(ready, actions);
    const form = card('half_plus_two').querySelector(
      '.jp-TfServe-label-form'
    ) as HTMLFormElement;
    const submit = button(form, 'Set label');
    expect(submit.disabled).toBe(true);
    act(() => type(form.querySelector('input')!, ' canary '));
    expect(submit.disabled).toBe(false);
    act(() => submit.click());
    expect(calls).toEqual([['setLabel', 'half_plus_two', 'canary', 2]]);
  });

  it('loads a model with the chosen version policy, and only with a name', () => {
    const { calls, actions } = recorder();
    render(ready, actions);
    const form = host.querySelector('.jp-TfServe-load form') as HTMLFormElement;
    const [name, basePath, count] = Array.from(form.querySelectorAll('input'));
    const submit = button(form, 'Load');
    expect(submit.disabled).toBe(true);
    act(() => type(name, 'mnist'));
    expect(submit.disabled).toBe(false);
    expect(submit.classList).toContain('jp-TfServe-primary'); // filled: it reads as pressable
    expect(basePath.placeholder).toBe('/models/mnist'); // where the server looks by default
    act(() => type(basePath, '/elsewhere/mnist'));
    act(() => type(form.querySelector('select')!, 'specific'));
    act(() => type(count, '3, 5'));
    act(() => submit.click());
    act(() => type(form.querySelector('select')!, 'latest'));
    act(() => type(count, '0'));
    expect(submit.disabled).toBe(true);
    expect(calls).toEqual([
      ['load', 'mnist', '/elsewhere/mnist', { specific: { versions: [3, 5] } }]
    ]);
  });

  it("shows an action's outcome in place, and lets the user dismiss it", () => {
    const { calls, actions } = recorder();
    const messages = {
      half_plus_two: {
        kind: 'error' as const,
        text: 'Rollback failed: no version 1'
      }
    };
    render(
      { ...ready, messages, pending: { 'unload:half_plus_two': true } },
      actions
    );
    const hpt = card('half_plus_two');
    expect(text(hpt.querySelector('.jp-TfServe-message-error'))).toContain(
      'Rollback failed'
    );
    expect(button(hpt, 'Unloading…').disabled).toBe(true);
    act(() =>
      (
        hpt.querySelector(
          '.jp-TfServe-message [aria-label="Dismiss"]'
        ) as HTMLElement
      ).click()
    );
    expect(calls).toEqual([['dismiss', 'half_plus_two']]);
  });

  it('invites to load a model when none is served', () => {
    render({ ...ready, models: [] });
    expect(text(host.querySelector('.jp-TfServe-empty'))).toContain(
      'No models are served yet'
    );
  });

  it("speaks the translator's words, and leaves the server's data as it is", () => {
    // A language whose every message is the English one in «quotes».
    const marked: TranslationBundle = Object.create(
      nullTranslator.load(TRANSLATION_DOMAIN)
    );
    marked.__ = (msgid: string, ...args: any[]) =>
      `«${msgid.replace(/%(\d+)/g, (_, n) => String(args[Number(n) - 1]))}»`;
    act(() =>
      root.render(
        <TranslationContext.Provider value={marked}>
          <PanelView state={ready} actions={recorder().actions} />
        </TranslationContext.Provider>
      )
    );
    expect(text(host.querySelector('.jp-TfServe-title'))).toBe('«TF Serving»');
    const model = card('half_plus_two');
    expect(text(model.querySelector('.jp-TfServe-model-name'))).toBe(
      'half_plus_two'
    );
    expect(button(model, '«Unload»')).toBeDefined();
    expect(text(model.querySelector('.jp-TfServe-policy-line'))).toContain(
      '«requests without a version → v'
    );
  });
});

describe('formatting', () => {
  it('writes shapes with unknown sizes and ranks', () => {
    expect(formatShape([-1, 28, 28])).toBe('[?, 28, 28]');
    expect(formatShape([])).toBe('[]');
    expect(formatShape(null)).toBe('unknown rank');
  });

  it('writes numbers with up to three significant figures', () => {
    expect(formatNumber(0.0333)).toBe('0.033');
    expect(formatNumber(2.777, ' ms')).toBe('2.78 ms');
    expect(formatNumber(42.25)).toBe('42.3');
    expect(formatNumber(1234.5)).toBe('1235');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(undefined)).toBe('—');
  });

  it('writes durations in the largest fitting unit', () => {
    expect(formatDuration(5)).toBe('5 s');
    expect(formatDuration(3599)).toBe('59 min');
    expect(formatDuration(7200)).toBe('2 h');
    expect(formatDuration(3 * 86400)).toBe('3 d');
  });
});
