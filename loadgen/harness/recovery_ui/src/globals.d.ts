// What the page gets from Locust (templateArgs) and from pegbench's scripts.
interface Window {
  templateArgs?: {
    extended_tabs?: { key: string; title: string }[];
    pegbench?: { series: string; rows: string; plotly: string; chart: string; fault?: string };
    [key: string]: unknown;
  };
  pegbenchChart?: (div: HTMLElement) => () => void;
}
