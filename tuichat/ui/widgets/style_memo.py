"""Styles looked up once per CSS change, for widgets that draw lines themselves.

A Line API widget styles every line it draws. Textual computes a widget's
`rich_style` by walking all its ancestors at each call, and component styles
through a lookup of their own; drawing a screen of rows asked for them
hundreds of times. They only change when the CSS is applied again (a theme
switch, a class or pseudo-class change), which Textual announces with
`notify_style_update`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style

if TYPE_CHECKING:
    from textual.widget import Widget

    _Mixin = Widget
else:
    # Not a Widget at run time: Textual takes a widget's CSS (its default
    # styles and type selectors) from the first DOM node among its bases.
    _Mixin = object


class StyleMemo(_Mixin):
    """Mix into a Widget subclass (listed before it): `_style(name)` for a
    component class, `_base_style` for the widget's own."""

    def _style_memo(self) -> dict[str, Style]:
        memo: dict[str, Style] | None = self.__dict__.get("_styles_by_name")
        if memo is None:
            memo = self.__dict__["_styles_by_name"] = {}
        return memo

    def _style(self, name: str) -> Style:
        # Not `partial`: a partial style drops the alpha of colours such as
        # $text-muted instead of blending them, which made muted text the
        # background colour in light themes.
        memo = self._style_memo()
        style = memo.get(name)
        if style is None:
            style = memo[name] = self.get_component_rich_style(name)
        return style

    @property
    def _base_style(self) -> Style:
        memo = self._style_memo()
        style = memo.get("")
        if style is None:
            style = memo[""] = self.rich_style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_memo().clear()
