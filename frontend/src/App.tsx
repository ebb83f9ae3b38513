import { NavLink, Route, Routes } from "react-router";
import { ConnectionBanner } from "./components/ConnectionBanner";
import { OverviewPage } from "./pages/overview/OverviewPage";
import { TasksPage } from "./pages/tasks/TasksPage";
import { TaskDetailPage } from "./pages/tasks/TaskDetailPage";
import { ModelsPage } from "./pages/models/ModelsPage";
import { ModelEditPage } from "./pages/models/ModelEditPage";
import { SystemPage } from "./pages/system/SystemPage";
import { CallersPage } from "./pages/callers/CallersPage";
import { CostPage } from "./pages/cost/CostPage";
import { Empty } from "./components/states";

const nav = [
  { to: "/", label: "Overview", end: true },
  { to: "/tasks", label: "Tasks", end: false },
  { to: "/models", label: "Models", end: false },
  { to: "/callers", label: "Callers", end: false },
  { to: "/cost", label: "Cost", end: false },
  { to: "/system", label: "System", end: false },
];

export function App() {
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">LLM Scheduler</div>
        <nav aria-label="Main">
          <ul>
            {nav.map((n) => (
              <li key={n.to}>
                <NavLink to={n.to} end={n.end}>
                  {n.label}
                </NavLink>
              </li>
            ))}
            <li>
              <a href="/monitoring/" target="_blank" rel="noreferrer">
                Queues ↗
              </a>
            </li>
          </ul>
        </nav>
      </header>
      <ConnectionBanner />
      <main id="main" tabIndex={-1}>
        <Routes>
          <Route path="/" element={<OverviewPage />} />
          <Route path="/tasks" element={<TasksPage />} />
          <Route path="/tasks/:id" element={<TaskDetailPage />} />
          <Route path="/models" element={<ModelsPage />} />
          <Route path="/models/new" element={<ModelEditPage />} />
          <Route path="/models/:id/edit" element={<ModelEditPage />} />
          <Route path="/callers" element={<CallersPage />} />
          <Route path="/cost" element={<CostPage />} />
          <Route path="/system" element={<SystemPage />} />
          <Route path="*" element={<Empty>This page does not exist.</Empty>} />
        </Routes>
      </main>
    </>
  );
}
