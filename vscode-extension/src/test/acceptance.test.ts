/** Unit tests: which edits are partial accepts of a shown suggestion, and the ghost text of an item. */
import { strict as assert } from 'node:assert';
import { advance, ghostRemainder, PartialAcceptTracker, serverSuggestionId, ShownSuggestion } from '../acceptance';

const U = 'file:///ws/a.py';
const shown = (over: Partial<ShownSuggestion> = {}): ShownSuggestion => ({
  uri: U,
  languageId: 'python',
  line: 1,
  character: 4,
  remaining: 'return a + b\n\ndef sub(a, b):',
  suggestion: 'return a + b\n\ndef sub(a, b):',
  ...over,
});

describe('ghostRemainder', () => {
  it('is the insert text when nothing was typed in the range', () => {
    assert.equal(ghostRemainder('return x', null), 'return x');
    assert.equal(ghostRemainder('return x', ''), 'return x');
  });
  it('drops what was typed when it is a prefix, else nothing is shown', () => {
    assert.equal(ghostRemainder('return x', 'ret'), 'urn x');
    assert.equal(ghostRemainder('return x', 'rex'), null);
  });
});

describe('advance', () => {
  it('moves along a line and across lines', () => {
    assert.deepEqual(advance(1, 4, 'return'), { line: 1, character: 10 });
    assert.deepEqual(advance(1, 4, 'a\n\nbc'), { line: 3, character: 2 });
  });
});

describe('PartialAcceptTracker', () => {
  it('reports a word accepted at the ghost position and follows on to the next word', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown()]);
    const first = t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'return ' }]);
    assert.deepEqual(first && { text: first.text, full: first.full, line: first.line, character: first.character }, {
      text: 'return ',
      full: false,
      line: 1,
      character: 4,
    });
    const second = t.onChange(U, [{ line: 1, character: 11, rangeLength: 0, text: 'a + b\n' }]);
    assert.equal(second?.text, 'a + b\n');
    assert.equal(second?.suggestion, 'return a + b\n\ndef sub(a, b):');
    // the rest now starts on line 2, column 0
    const third = t.onChange(U, [{ line: 2, character: 0, rangeLength: 0, text: '\ndef' }]);
    assert.equal(third?.text, '\ndef');
  });

  it('does not count typing one matching character, but keeps tracking', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown()]);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'r' }]), null);
    assert.equal(t.onChange(U, [{ line: 1, character: 5, rangeLength: 0, text: 'eturn' }])?.text, 'eturn');
  });

  it('the whole remaining text is a full accept (reported by the item command), not a partial one', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown({ remaining: 'return a', suggestion: 'return a' })]);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'return a' }]), null);
    assert.equal(t.onChange(U, [{ line: 1, character: 12, rangeLength: 0, text: 'xx' }]), null);
  });

  it('forgets the suggestion after an unrelated edit, a replacement, or a full accept', () => {
    for (const change of [
      { line: 1, character: 4, rangeLength: 0, text: 'print' },
      { line: 0, character: 0, rangeLength: 0, text: 'return' },
      { line: 1, character: 4, rangeLength: 3, text: 'return' },
    ]) {
      const t = new PartialAcceptTracker();
      t.setShown(U, [shown()]);
      assert.equal(t.onChange(U, [change]), null);
      assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'return' }]), null);
    }
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown()]);
    t.fullyAccepted(U);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'return' }]), null);
  });

  it('keeps documents apart and ignores documents without suggestions', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown()]);
    assert.equal(t.onChange('file:///ws/b.py', [{ line: 1, character: 4, rangeLength: 0, text: 'return' }]), null);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'return' }])?.uri, U);
  });

  it('picks the item that matches when several are shown', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown({ remaining: 'pass', suggestion: 'pass' }), shown({ remaining: 'yield x', suggestion: 'yield x' })]);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'yield' }])?.suggestion, 'yield x');
  });
});

describe('serverSuggestionId', () => {
  it('reads the id from the server\'s own inhouse.accepted command only', () => {
    const args = [{ id: 's-17', uri: U, text: 'x', full: true }];
    assert.equal(serverSuggestionId({ command: 'inhouse.accepted', arguments: args }), 's-17');
    assert.equal(serverSuggestionId({ command: 'other.command', arguments: args }), undefined);
    assert.equal(serverSuggestionId({ command: 'inhouse.accepted', arguments: [{ id: 17 }] }), undefined);
    assert.equal(serverSuggestionId({ command: 'inhouse.accepted' }), undefined);
    assert.equal(serverSuggestionId(undefined), undefined);
  });

  it('partial accepts carry the id of the suggestion they come from', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown({ id: 's-3' })]);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'return' }])?.id, 's-3');
  });
});

describe('expectPartial (accept next word through the extension\'s key binding)', () => {
  it('reports a one-character accept that was announced, and only that one', () => {
    const t = new PartialAcceptTracker();
    t.setShown(U, [shown({ remaining: '(radius ** 2)', suggestion: '(radius ** 2)' })]);
    t.expectPartial(U);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: '(' }])?.text, '(');
    assert.equal(t.onChange(U, [{ line: 1, character: 5, rangeLength: 0, text: 'r' }]), null, 'typing');
    t.expectPartial(U);
    assert.equal(t.onChange(U, [{ line: 1, character: 6, rangeLength: 0, text: 'adius' }])?.text, 'adius');
  });

  it('is ignored for documents without a suggestion on screen', () => {
    const t = new PartialAcceptTracker();
    t.expectPartial(U);
    t.setShown(U, [shown()]);
    assert.equal(t.onChange(U, [{ line: 1, character: 4, rangeLength: 0, text: 'r' }]), null);
  });
});
