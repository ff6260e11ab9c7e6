/** Unit tests: the Sign in command's check of a gateway URL and token, against a local HTTP server. */
import { strict as assert } from 'node:assert';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { checkGateway, gatewayUrl } from '../gatewayAuth';

describe('gatewayUrl', () => {
  it('trims, drops trailing slashes, refuses what is not an http(s) URL', () => {
    assert.equal(gatewayUrl(' https://gw.corp:8090/ '), 'https://gw.corp:8090');
    assert.equal(gatewayUrl('gw.corp:8090'), undefined);
    assert.equal(gatewayUrl('https://'), undefined);
  });
});

describe('checkGateway', () => {
  let server: http.Server;
  let url = '';
  before(async () => {
    server = http.createServer((req, res) => {
      const ok = req.url === '/v1/policy' && req.headers.authorization === 'Bearer ih_good';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { adoption_events: true } : { error: 'unknown token', error_type: 'unauthorized' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('accepts a good token and reports the policy', async () => {
    const check = await checkGateway(url, ' ih_good ');
    assert.equal(check.ok, true);
    assert.equal(check.adoptionEvents, true);
  });

  it('names a refused token', async () => {
    const check = await checkGateway(url, 'ih_bad');
    assert.equal(check.ok, false);
    assert.match(check.message, /refused the token: unknown token/);
  });

  it('names an unreachable gateway', async () => {
    const check = await checkGateway('http://127.0.0.1:1', 'ih_good', 2000);
    assert.equal(check.ok, false);
    assert.match(check.message, /cannot reach the gateway/);
  });
});
