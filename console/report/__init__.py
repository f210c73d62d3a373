"""Reports people look at: plots and a one-page summary of a recorded session or a QA run.

- `console.report.data`: what a report shows, read from the session store (no
  matplotlib): the telemetry series, the state bands, the alarm and fault
  markers, the limits, the per-cycle figures.
- `console.report.plot`: the figure of one session (matplotlib, imported only
  when a figure is drawn, with the headless Agg backend).
- `console.report.page`: the HTML pages, self-contained apart from the PNGs
  beside them (relative links, so the folder can be copied anywhere).

matplotlib is the optional extra `report` (`pip install 'probe-console[report]'`);
nothing else in the console imports it.
"""
