// Drives the operator console in headless Chromium, as an operator would. Run by
// scripts/console-browser.sh for tests/it/console_browser.rs, which starts the broker,
// hookbridge (sink `orders` whose destination answers 503, then 400, until FIX_URL is
// called; source `github` with an event-type rule) and dead-letters a record whose body
// is `<script>alert(1)</script>` (DLQ 0:0), then a second one (0:1).
//
// env: CONSOLE_BASE, CONSOLE_TOKEN, FIX_URL, SECRETS (comma separated values that must
// never appear on a page), RECORD_ID (webhook-id of the record), MODE (`full` or
// `read-only`), SCREENSHOTS (directory for docs/operations.md's pictures; optional).
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const base = env('CONSOLE_BASE');
const token = env('CONSOLE_TOKEN');
const mode = env('MODE');
const secrets = env('SECRETS').split(',').filter(Boolean);
const shots = process.env.SCREENSHOTS || '';
const redriveUrl = `${base}/console/sinks/orders/dlq/0:0/redrive`;

function check(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

const seen = [];
async function remember(page) {
  seen.push({ url: page.url(), html: await page.content() });
}
async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}
async function cookieHeader(context) {
  const c = (await context.cookies(`${base}/console`)).find((c) => c.name === 'hb_console');
  check(c && c.httpOnly && c.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
  check(!c.value.includes(token), 'the cookie holds a session id, not the token');
  return `hb_console=${c.value}`;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
let alerted = false;
try {
  // Anonymous: every page 401, every action 403.
  const anon = await browser.newContext();
  const anonPage = await anon.newPage();
  for (const path of ['/console', '/console/sinks/orders', '/console/sinks/orders/dlq',
    '/console/sinks/orders/dlq/0:0', '/console/sinks/orders/replay?from=1h', '/console/api/overview',
    '/console/sources/github']) {
    const r = await anonPage.goto(base + path);
    check(r.status() === 401, `anonymous GET ${path} answers 401`);
    await remember(anonPage);
  }
  for (const path of ['/console/sinks/orders/dlq/0:0/redrive', '/console/sinks/orders/dlq/redrive',
    '/console/sinks/orders/replay', '/console/logout']) {
    const r = await anon.request.post(base + path, { form: { csrf: 'guess', from: '1h' } });
    check(r.status() === 403, `anonymous POST ${path} answers 403`);
  }
  await anon.close();

  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.on('dialog', async (d) => {
    if (d.type() === 'alert') {
      alerted = true;
      await d.dismiss();
    } else {
      await d.accept();
    }
  });

  // Log in.
  await page.goto(`${base}/console/login`);
  await shot(page, 'login');
  await page.fill('input[name=token]', 'not-the-token');
  await page.click('button');
  check((await page.textContent('.error')).includes('not the console token'), 'a wrong token is refused');
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(`${base}/console`), page.click('button')]);
  check((await page.textContent('h1')) === 'Overview', 'logged in to the overview');
  const cookie = await cookieHeader(context);

  // Live figures: the page script polls and fills in the rate.
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-rate="sinks|orders|delivered"]');
    return r && r.textContent.endsWith('/s');
  }, null, { timeout: 15000 });
  check(true, 'the overview figures are refreshed by polling');
  await remember(page);
  await shot(page, 'overview');

  if (mode === 'full') {
    // A failure row: the 500 (retrying), then the 400 that dead-lettered it.
    await page.click('a[href="/console/sinks/orders"]');
    const deadline = Date.now() + 20000;
    let text = '';
    while (Date.now() < deadline) {
      text = await page.textContent('table.failures');
      if (text.includes('dead-lettered: permanent')) break;
      await page.waitForTimeout(300);
      await page.reload();
    }
    check(text.includes('dead-lettered: permanent') && text.includes(env('RECORD_ID')), 'the sink page shows the dead-lettered failure row');
    check(text.includes('503') && text.includes('retrying'), 'the sink page shows the 503 that was retried');
    check(text.includes('busy <i>try later</i>'), "the failure row shows the destination's answer as text");
    await remember(page);
    await shot(page, 'sink');

    // The DLQ browser, filtered, then the record.
    await page.click('text=Dead letters');
    await page.fill('input[name=status]', '4xx');
    await page.click('form.filters button');
    await page.waitForSelector('table.dlq a');
    await remember(page);
    await shot(page, 'dlq');
    await page.click('table.dlq a[href$="/dlq/0%3A0"]');
    await page.waitForSelector('pre.body');
    check((await page.textContent('pre.body')) === '<script>alert(1)</script>', 'the body renders as text');
    check((await page.$$('main script')).length === 0, 'no script element came from the record');
    await remember(page);
    await shot(page, 'record');

    // Refused without the CSRF token, even with a valid session.
    for (const form of [{}, { csrf: 'forged' }]) {
      const r = await context.request.post(redriveUrl, { form, headers: { cookie } });
      check(r.status() === 403 && (await r.text()).includes('CSRF'), `a POST with csrf=${form.csrf ?? '(none)'} is refused`);
    }

    // Fix the destination, redrive, see it delivered.
    await fetch(env('FIX_URL'));
    await Promise.all([page.waitForURL(/\/redrive$/), page.click('button.action')]);
    check((await page.textContent('.result')).includes('Delivered'), 'the redriven record is delivered');
    await remember(page);

    // Redrive the selected: tick the second dead letter, confirm, see it delivered.
    await page.goto(`${base}/console/sinks/orders/dlq`);
    await page.check('input[name=at][value="0:1"]');
    await Promise.all([page.waitForURL(/\/dlq\/redrive$/), page.click('text=Redrive the selected')]);
    check((await page.textContent('.result')).includes('redriven: 1 of 1'), 'the selected dead letter is redriven');
    check((await page.textContent('main ul')).includes('Delivered'), 'and delivered');
    await remember(page);
    await shot(page, 'redriven');

    // The source page: signature failures and the event catalog.
    await page.click('a[href="/console/sources/github"]');
    const catalog = await page.textContent('table.catalog');
    check(catalog.includes('push') && catalog.includes('<i>ping</i>'), 'the event catalog lists the event types, as text');
    check((await page.textContent('table.signature-failures')).includes('mismatch'), 'the source page shows signature failures by reason');
    await remember(page);
    await shot(page, 'source');

    // Replay: a dry run per partition, then applied (confirmed) while this process runs
    // the sink: both records are delivered again (the Rust side counts them).
    await page.goto(`${base}/console/sinks/orders/replay?from=1h`);
    check((await page.textContent('main')).includes('2 record(s) would be delivered again'), 'the replay dry run counts per partition');
    await remember(page);
    await shot(page, 'replay');
    // The form posts to the page's own URL; the result page is the one with `.result`.
    await Promise.all([page.waitForSelector('.result', { timeout: 60000 }), page.click('text=Apply the replay')]);
    const applied = await page.textContent('.result');
    check(applied.includes('rewound on 1 partition') && applied.includes('runs the sink again'), 'the replay is applied');
    await remember(page);
    await shot(page, 'replayed');
  } else {
    await page.goto(`${base}/console/sinks/orders/dlq/0:0`);
    await page.waitForSelector('pre.body');
    check((await page.textContent('.badge')) === 'read-only', 'read-only is shown');
    check((await page.$$('button.action')).length === 0, 'read-only hides the redrive button');
    await page.goto(`${base}/console/sinks/orders/dlq`);
    check((await page.$$('input[name=at]')).length === 0 && (await page.$$('button.action')).length === 0,
      'read-only hides the checkboxes and redrive buttons of the DLQ browser');
    await remember(page);
    const selected = await context.request.post(`${base}/console/sinks/orders/dlq/redrive`, {
      form: { csrf: await page.getAttribute('input[name=csrf]', 'value'), at: '0:1' }, headers: { cookie } });
    check(selected.status() === 403, 'read-only refuses a redrive of the selected');
    await remember(page);
    await page.goto(`${base}/console/sinks/orders/replay?from=1h`);
    check((await page.$$('button.action')).length === 0, 'read-only hides the replay button');
    await remember(page);
    const csrf = await page.getAttribute('input[name=csrf]', 'value');
    const r = await context.request.post(redriveUrl, { form: { csrf }, headers: { cookie } });
    check(r.status() === 403 && (await r.text()).includes('read-only'), 'read-only refuses a redrive with a valid CSRF token');
  }

  check(!alerted, 'no record field ran as script');
  for (const { url, html } of seen) {
    check(secrets.every((s) => !html.includes(s)), `no secret value on ${url}`);
  }
} finally {
  await browser.close();
}
