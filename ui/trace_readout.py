"""``PlayerReadout``: where the trace player stands, and its hover readout — a mixin of
``TracePlayer`` (``ui.trace_player``) over its ``index``, ``shown``, ``view``,
``seq_box`` and ``readout``.

The position is the last update in what is shown (``position_seq``): the seq
scrubbed to, or the last update visible at the epoch shown; the seq box shows it.
The readout names an element's value and the last update that wrote it by then,
read from the trace's ``UpdateHistory`` as the live window's readout is. A long
trace's history is capped (``TraceIndex.history_complete``): past its end
(``covers``) the readout says the last write is not known rather than guess.
"""

from __future__ import annotations

from .color_bar import format_value
from .history_docks import last_write_text


class PlayerReadout:
    """The position and hover readout of ``TracePlayer`` (see the module docstring)."""

    def position_seq(self) -> int | None:
        """The last update in what is shown: the seq scrubbed to, or the last update
        visible at the epoch shown (None: none, the initial buffer)."""
        if self.shown is None or self.index is None:
            return None
        epoch, seq = self.shown
        return seq if seq is not None else self.index.last_seq_at(epoch)

    def _show_position_seq(self) -> None:
        seq = self.position_seq()
        if seq is not None and self.seq_box.minimum() <= seq <= self.seq_box.maximum():
            self.seq_box.blockSignals(True)
            self.seq_box.setValue(seq)
            self.seq_box.blockSignals(False)

    # ------------------------------------------------------------------ hover readout
    def covers(self, epoch: int, seq: int | None = None) -> bool:
        """Whether the trace's history (capped for long traces: ``history_complete``)
        holds every update up to that position (``seq``, or the end of ``epoch``)."""
        idx = self.index
        if idx is None or idx.history_complete:
            return True
        rows = idx.history.rows
        if not rows:
            return epoch == 0 and seq is None
        if seq is not None:
            return seq <= rows[-1].last_seq
        last = rows[-1].epoch_visible
        return last is not None and epoch < last      # its last epoch may be cut short

    def _on_hover(self, index) -> None:
        self._hover = None if index is None else tuple(index)
        self._update_readout()

    def readout_text(self, index: tuple[int, ...] | None) -> str:
        """What the readout says about element ``index`` of what is shown: its value
        and the last update that wrote it by then (as the live window's readout)."""
        if index is None or self.shown is None:
            return "hover over the buffer to read an element"
        value = self.view.value_at(index)
        if value is None:
            return ""
        epoch, seq = self.shown
        where = f"epoch {epoch}" if seq is None else f"after seq {seq}"
        text = f"index {index}  value {format_value(value)}  {where}"
        h = self.history
        if h is None:
            return text
        if not self.covers(epoch, seq):
            return (text + f"  last write: not known (the player's history holds the first "
                    f"{len(h.rows)} updates)")
        return text + last_write_text(h, index, epoch, upto_seq=seq)

    def _update_readout(self) -> None:
        self.readout.setText(self.readout_text(self._hover))
