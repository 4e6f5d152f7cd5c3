// The Recovery tab: pegbench's rows (policies, faults, finished runs with their reports), a
// live chart (ops/s and errors/s per policy, faults as bands, server failovers as lines) and
// the form that injects a fault now. Everything polls the server on its own, so the tab
// stays current after a Stop too (a run's row appears once its folder is written).
import {
  Alert,
  Box,
  Button,
  Link,
  MenuItem,
  Paper,
  Stack,
  Table,
  TableBody,
  TableCell,
  TableContainer,
  TableHead,
  TableRow,
  TextField,
  Typography,
} from '@mui/material';
import { FormEvent, useEffect, useRef, useState } from 'react';

export const TAB_KEY = 'recovery';
const POLL_MS = 2000;
const urls = window.templateArgs?.pegbench;

type Column = { key: string; title: string };
type Row = Record<string, string | number | null>;
type Rows = { columns: Column[]; rows: Row[] };

function loadScript(src: string): Promise<void> {
  const existing = document.querySelector(`script[src="${src}"]`);
  if (existing) {
    return existing.getAttribute('data-loaded')
      ? Promise.resolve()
      : new Promise((resolve) => existing.addEventListener('load', () => resolve()));
  }
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = () => {
      script.setAttribute('data-loaded', '1');
      resolve();
    };
    script.onerror = () => reject(new Error(`${src} did not load`));
    document.head.appendChild(script);
  });
}

function usePolled<T>(url: string | undefined): T | null {
  const [data, setData] = useState<T | null>(null);
  useEffect(() => {
    if (!url) return undefined;
    let live = true;
    const load = () =>
      fetch(url, { credentials: 'same-origin' })
        .then((response) => (response.ok ? response.json() : null))
        .then((body) => live && body && setData(body))
        .catch(() => undefined);
    load();
    const timer = setInterval(load, POLL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [url]);
  return data;
}

function RecoveryChart() {
  const div = useRef<HTMLDivElement>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    if (!urls) return undefined;
    let stop: (() => void) | undefined;
    let live = true;
    loadScript(urls.plotly)
      .then(() => loadScript(urls.chart))
      .then(() => {
        if (live && div.current && window.pegbenchChart) stop = window.pegbenchChart(div.current);
      })
      .catch((e: Error) => setError(e.message));
    return () => {
      live = false;
      stop?.();
    };
  }, []);
  return error ? <Alert severity='warning'>{error}</Alert> : <Box id='recovery-chart' ref={div} sx={{ height: 420 }} />;
}

function Cell({ column, value }: { column: string; value: Row[string] }) {
  if (column === 'report' && value) return <Link href={String(value)}>report</Link>;
  return <>{value ?? ''}</>;
}

// Which columns each kind of row fills: a policy its live figures, a fault each policy's
// TTR-first / lag (the ttr_<i> columns), a finished run its verdict and report.
const PER_POLICY = /^ttr_\d+$/;
const KIND_COLUMNS: Record<string, (key: string) => boolean> = {
  policy: (key) => key !== 'report' && !PER_POLICY.test(key),
  fault: (key) => key === 'name' || PER_POLICY.test(key),
  run: (key) => key === 'name' || key === 'report',
};
const KIND_TITLES: Record<string, string> = { policy: 'Policy', fault: 'Fault', run: 'Finished run' };

function RowsTable({ kind, columns, rows }: { kind: string; columns: Column[]; rows: Row[] }) {
  const shown = columns.filter((c) => KIND_COLUMNS[kind](c.key));
  return (
    <TableContainer component={Paper}>
      <Table size='small' className='recovery-table' data-kind={kind}>
        <TableHead>
          <TableRow>
            {shown.map((c) => (
              <TableCell key={c.key}>{c.key === 'name' ? KIND_TITLES[kind] : c.title}</TableCell>
            ))}
          </TableRow>
        </TableHead>
        <TableBody>
          {rows.map((row, i) => (
            <TableRow key={`${row.name}-${i}`}>
              {shown.map((c) => (
                <TableCell key={c.key}>
                  <Cell column={c.key} value={row[c.key]} />
                </TableCell>
              ))}
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </TableContainer>
  );
}

function RecoveryTables() {
  const data = usePolled<Rows>(urls?.rows);
  if (!data) return null;
  return (
    <>
      {['policy', 'fault', 'run'].map((kind) => {
        const rows = data.rows.filter((r) => r.kind === kind);
        return rows.length ? <RowsTable key={kind} kind={kind} columns={data.columns} rows={rows} /> : null;
      })}
    </>
  );
}

const KINDS = ['pause', 'kill', 'restart'];

function FaultForm({ url }: { url: string }) {
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const body = new URLSearchParams(new FormData(event.currentTarget) as unknown as Record<string, string>);
    fetch(url, { method: 'POST', body, credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then((response) => response.json().then((d) => setResult({ ok: response.ok, message: d.message })))
      .catch((e: Error) => setResult({ ok: false, message: e.message }));
  };
  return (
    <Box component='form' id='fault-form' onSubmit={submit}>
      <Typography variant='h6'>Inject a fault now</Typography>
      <Stack direction='row' spacing={2} sx={{ my: 1, flexWrap: 'wrap' }}>
        <TextField select name='kind' label='kind' defaultValue='pause' size='small' sx={{ minWidth: 110 }}>
          {KINDS.map((k) => (
            <MenuItem key={k} value={k}>
              {k}
            </MenuItem>
          ))}
        </TextField>
        <TextField name='target' label='target' defaultValue='primary-of:0' size='small'
          helperText='replicaN, primary-of:P, secondary-of:P, random' />
        <TextField name='duration_s' label='duration_s (pause)' size='small' />
        <TextField name='restart_after_s' label='restart_after_s (kill, restart)' size='small' />
        <Button type='submit' variant='contained'>
          Inject
        </Button>
      </Stack>
      {result && (
        <Alert id='fault-result' severity={result.ok ? 'success' : 'error'}>
          {result.message}
        </Alert>
      )}
    </Box>
  );
}

export default function RecoveryTab() {
  if (!urls) return <Alert severity='info'>pegbench's Recovery tab is not registered here.</Alert>;
  return (
    <Stack spacing={2}>
      <RecoveryChart />
      <RecoveryTables />
      {urls.fault && <FaultForm url={urls.fault} />}
      <Typography variant='body2' color='text.secondary'>
        These figures count from Start and are pegbench's own: Locust's Reset stats clears only
        Locust's request statistics. Reports of finished runs open from their rows; the same
        view without Locust's page is at <Link href='./recovery'>/recovery</Link>.
      </Typography>
    </Stack>
  );
}
