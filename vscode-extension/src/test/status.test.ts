/** Unit tests: the status bar state machine (events -> model -> text). */
import { strict as assert } from 'node:assert';
import { display, initialStatus, reduce, render, StatusEvent, StatusModel } from '../status';

const run = (events: StatusEvent[], start: StatusModel = initialStatus(true)): StatusModel =>
  events.reduce(reduce, start);
const server = (params: Record<string, unknown>): StatusEvent => ({ kind: 'server', params });

describe('status state machine', () => {
  it('starts in "starting" and becomes ready when the client has started', () => {
    assert.equal(display(initialStatus(true)), 'starting');
    assert.equal(display(run([{ kind: 'starting' }, { kind: 'started' }])), 'ready');
  });

  it('follows the server\'s $/inhouse/status states and keeps model and adapter', () => {
    let m = run([{ kind: 'started' }, server({ state: 'ready', model: 'tiny', adapter: 'team-a' })]);
    assert.equal(display(m), 'ready');
    assert.equal(render(m).text, '$(check) inhouse: ready · tiny · team-a');
    m = run([{ kind: 'requestStarted' }, server({ state: 'generating' })], m);
    assert.equal(display(m), 'generating');
    assert.equal(m.model, 'tiny');
    m = reduce(m, { kind: 'requestFinished' });
    assert.equal(display(m), 'ready', 'a cancelled request leaves the server at "generating": not shown');
    m = reduce(m, server({ state: 'unreachable', detail: 'http://127.0.0.1:9/ refused' }));
    assert.equal(display(m), 'unreachable');
    assert.equal(render(m).background, 'warning');
    assert.match(render(m).tooltip, /refused/);
    m = reduce(m, server({ state: 'ready', adapter: null }));
    assert.equal(display(m), 'ready');
    assert.equal(m.adapter, null);
    assert.equal(render(m).text, '$(check) inhouse: ready · tiny');
    assert.ok(!render(m).tooltip.includes('refused'), 'old detail is dropped on a state change');
  });

  it('does not let a "started" after the first notification overwrite it', () => {
    const m = run([{ kind: 'starting' }, server({ state: 'unreachable' }), { kind: 'started' }]);
    assert.equal(display(m), 'unreachable');
  });

  it('takes the server\'s own "starting" (backend not asked yet) until it reports ready', () => {
    let m = run([{ kind: 'started' }, server({ state: 'starting', model: null })]);
    assert.equal(display(m), 'starting');
    m = reduce(m, server({ state: 'ready', model: 'tiny' }));
    assert.equal(render(m).text, '$(check) inhouse: ready · tiny');
  });

  it('ignores unknown states but takes the names', () => {
    const m = run([{ kind: 'started' }, server({ state: 'exploding', model: 'm2' })]);
    assert.equal(display(m), 'ready');
    assert.equal(m.model, 'm2');
  });

  it('shows generating while a request is in flight, never below zero', () => {
    let m = run([{ kind: 'started' }, { kind: 'requestStarted' }, { kind: 'requestStarted' }]);
    assert.equal(display(m), 'generating');
    m = run([{ kind: 'requestFinished' }], m);
    assert.equal(display(m), 'generating');
    m = run([{ kind: 'requestFinished' }, { kind: 'requestFinished' }], m);
    assert.equal(m.inflight, 0);
    assert.equal(display(m), 'ready');
  });

  it('the user toggle wins over every server state and comes back to it', () => {
    let m = run([{ kind: 'started' }, server({ state: 'unreachable' }), { kind: 'setEnabled', enabled: false }]);
    assert.equal(display(m), 'disabled');
    assert.match(render(m).text, /^\$\(circle-slash\) inhouse: disabled/);
    assert.match(render(m).tooltip, /turn completions on/);
    m = reduce(m, { kind: 'setEnabled', enabled: true });
    assert.equal(display(m), 'unreachable');
    assert.equal(display(initialStatus(false)), 'disabled');
  });

  it('shows the server\'s own "disabled" state', () => {
    assert.equal(display(run([{ kind: 'started' }, server({ state: 'disabled' })])), 'disabled');
  });

  it('a start failure sticks until the next start, with the message in the tooltip', () => {
    let m = run([{ kind: 'starting' }, { kind: 'failed', detail: 'inhouse: the language server could not start' }]);
    assert.equal(display(m), 'failed');
    assert.equal(render(m).background, 'error');
    assert.match(render(m).tooltip, /could not start/);
    m = reduce(m, server({ state: 'ready' }));
    assert.equal(display(m), 'failed');
    m = run([{ kind: 'starting' }, { kind: 'started' }], m);
    assert.equal(display(m), 'ready');
    assert.equal(m.detail, null);
  });

  it('stopping clears in-flight requests', () => {
    const m = run([{ kind: 'started' }, { kind: 'requestStarted' }, { kind: 'stopped' }]);
    assert.equal(m.inflight, 0);
    assert.equal(display(m), 'stopped');
  });
});
