"""``Stepping``: what the stepping toolbar (``ui.debug_controls.DebugControls``) does
when asked — pause/resume, step, run to a seq or an epoch — as a mixin over its state
(``session``, ``epoch_target``, ``break_seq``, ``_stepping``). The toolbar builds the
actions and follows the session; this decides how many updates to step and says why
when it steps none.
"""

from __future__ import annotations

from PyQt6.QtWidgets import QInputDialog


class Stepping:
    """Pause, resume, step and run-to for ``DebugControls`` (see the module docstring)."""

    # -- actions ------------------------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        if paused != self.session.paused:
            self.session.set_paused(paused)
        elif not paused and self.break_seq is not None:
            self.session.set_paused(False)   # resume from a watch stop

    def step(self) -> None:
        """Apply exactly the next queued update; says so when none is queued (a step
        is never saved up for an update that is not queued yet)."""
        if not self.session.paused:
            self.say("step: pause first (Shift+F5)")
            return
        st = self._stats()
        if st is None:
            return
        if st.pending == 0:
            self.say("step: nothing is queued — Step applies the next update once one is "
                     "enqueued (no step is saved up)")
            return
        self._stepping = True
        self.session.step(1)

    def note_step(self) -> None:
        """Another control stepped (the Run menu's F10): select what it applies."""
        if self.session.paused:
            self._stepping = True

    def _stats(self):
        m = self.manager
        if m is None:
            return None
        try:
            st = m.stats()
        except Exception as exc:
            self.say(f"stats: {type(exc).__name__}: {exc}")
            return None
        self.session.last_stats = st
        return st

    def run_to_seq(self, seq: int) -> int:
        """Step until session-wide ``seq`` is applied (pausing first); returns the
        number of element updates stepped (0: already applied or nothing queued)."""
        if self.manager is None:
            return 0
        if not self.session.paused:
            self.session.set_paused(True)
        st = self._stats()
        if st is None:
            return 0
        off = self._seq_offset()
        applied, last = st.applied_seq + off, st.last_seq + off
        if seq <= applied:
            self.say(f"run to seq {seq}: already applied (applied through seq {applied})")
            return 0
        target = min(int(seq), last)
        if target <= applied:
            self.say(f"run to seq {seq}: nothing is queued after seq {applied} "
                     "(no step is saved up for updates not yet enqueued)")
            return 0
        n = target - applied
        self._stepping = True
        self.session.step(n)
        more = f"; only up to seq {last} is queued, so it stops there" if seq > last else ""
        self.say(f"run to seq {seq}: stepping {n} update{'s' if n != 1 else ''}{more}")
        return n

    def run_to_epoch(self, epoch: int) -> bool:
        """Resume, and pause again once ``epoch`` is visible."""
        if self.manager is None:
            return False
        if epoch <= self.session.epoch:
            self.say(f"run to epoch {epoch}: epoch {self.session.epoch} is already visible")
            return False
        self.epoch_target = int(epoch)
        if not self.session.autosync:
            self.say(f"run to epoch {epoch}: auto-sync is off — each Synchronize makes one epoch")
        self.set_paused(False)
        self._update_status()
        return True

    def ask_run_to_seq(self) -> None:
        st = self.session.last_stats
        off = self._seq_offset()
        start = (st.applied_seq + off + 1) if st is not None else 1
        n, ok = QInputDialog.getInt(self, "Run to seq", "Apply updates up to and including seq:",
                                    start, 1, 2**31 - 1)
        if ok:
            self.run_to_seq(n)

    def ask_run_to_epoch(self) -> None:
        n, ok = QInputDialog.getInt(self, "Run to epoch", "Resume and pause when this epoch "
                                    "is visible:", self.session.epoch + 1, 1, 2**31 - 1)
        if ok:
            self.run_to_epoch(n)
