"""``BackBufferToggle``: the Front/Back toggle of the stepping toolbar
(``ui.debug_controls.DebugControls``), as a mixin over its state.

``manager.back()`` — the buffer being built — is fetched on a short-lived thread and
handed back through a queued signal (``_sigBack``, declared on the toolbar): the GUI
thread never waits on the manager. A newer request (``_gen``) makes an older answer
stale; a fetch asked for while one runs is made once it ends.
"""

from __future__ import annotations

import threading


class BackBufferToggle:
    """Show the back buffer in the view while paused (see the module docstring)."""

    # -- Front/Back ------------------------------------------------------------------------------
    def toggle_back(self, on: bool) -> None:
        self.show_back(on)

    def show_back(self, on: bool) -> None:
        """Show the back buffer (while paused) or the front again."""
        caps = self._caps()
        if on and not (caps and caps.back and self.session.paused):
            self.back_action.setChecked(False)
            self.say("Show back: pause a backend that can show its back buffer first")
            return
        if on == self.showing_back:
            self.back_action.setChecked(on)
            return
        self.showing_back = on
        self.back_action.setChecked(on)
        if on:
            self._restore_texture = (self.view.texture_args if self.view.using_shared_texture
                                     else None)
            self._fetch_back()
        else:
            self._gen += 1
            self.back_seq = None
            if self._restore_texture is not None and self.manager is not None:
                self.view.set_texture_source(*self._restore_texture)
            self._restore_texture = None
            self.session.refresh_front()
        self._update_status()

    def _fetch_back(self) -> None:
        if self._fetching:
            self._fetch_again = True
            return
        m = self.manager
        if m is None:
            return
        gen = self._gen
        self._fetching = True
        off = self._seq_offset()

        def work() -> None:
            try:
                back = m.back()
                applied = m.stats().applied_seq + off
                self._sigBack.emit(gen, back, applied, None)
            except Exception as exc:
                self._sigBack.emit(gen, None, None, exc)

        self._thread = threading.Thread(target=work, name="bufferscope-back", daemon=True)
        self._thread.start()

    def _on_back(self, gen: int, back, applied, error) -> None:
        self._fetching = False
        if self._fetch_again:
            self._fetch_again = False
            if self.showing_back:
                self._fetch_back()
                return
        if gen != self._gen or not self.showing_back:
            return
        if error is not None:
            self.say(f"reading the back buffer: {type(error).__name__}: {error}")
            self.show_back(False)
            return
        if self.view.using_shared_texture:
            self.view.set_texture_source(None)     # draw the copy we hand it
        self.view.set_front(back, self.session.epoch)
        self.back_seq = applied
        self._update_status()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Join the back-buffer thread (tests, teardown)."""
        t = self._thread
        if t is not None:
            t.join(timeout)
