// Locust's own web UI (locust-ui), with the Recovery tab the server declares rendered by
// RecoveryTab: its table, a live chart and the fault form. Other extensions' tabs stay
// Locust's plain tables.
import LocustUi from 'locust-ui';
import ReactDOM from 'react-dom/client';

import RecoveryTab, { TAB_KEY } from './RecoveryTab';

type DeclaredTab = { key: string; title: string };

const declared: DeclaredTab[] = window.templateArgs?.extended_tabs ?? [];
const extendedTabs = declared.map((tab) =>
  tab.key === TAB_KEY ? { ...tab, component: RecoveryTab } : tab,
);

ReactDOM.createRoot(document.getElementById('root')!).render(
  <LocustUi extendedTabs={extendedTabs} />,
);
