"""What a browser would submit from an admin page's form, read from the page itself.

The admin matrix posts these, so a refused POST proves something only because the same
data, posted by someone allowed, is accepted: the operator's form, filled in or changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

# Text boxes whose value is not free text: appending to it would only make it invalid.
NOT_FREE_TEXT = ("RawIdAdminField", "vDateField", "vTimeField")

# What a required empty box is filled with, by input type.
FILLERS = {
    "text": "{name}",
    "email": "{name}@example.com",
    "url": "https://{name}.example.com",
    "number": "1",
    "password": "quartz-lantern-4821-{name}",
}


@dataclass
class Select:
    name: str
    multiple: bool
    required: bool
    options: list[tuple[str, str, bool]] = field(default_factory=list)  # value, label, selected


@dataclass
class Form:
    """One form's fields: `data` as a browser submits it, and what could be filled in."""

    data: dict[str, list[str]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)  # text boxes, in page order
    # Empty, and required or a password: name, type.
    blanks: list[tuple[str, str]] = field(default_factory=list)
    selects: list[Select] = field(default_factory=list)

    def filled(self, marker: str, name: str) -> dict[str, list[str]]:
        """The data with every required box (and password) filled in from `name`, and
        every required choice made, preferring an option that names `marker`."""
        data = dict(self.data)
        for box, kind in self.blanks:
            data[box] = [FILLERS.get(kind, FILLERS["text"]).format(name=name)]
        for select in self.selects:
            if select.required and not any(data.get(select.name, [""])):
                choices = [(value, label) for value, label, _ in select.options if value]
                ours = [value for value, label in choices if marker in label]
                data[select.name] = (ours or [value for value, _ in choices])[:1]
        return data

    def changed(self) -> dict[str, list[str]] | None:
        """The data with one value changed (the first text box, else the first choice
        that has another option), or None if nothing on the form can change."""
        data = dict(self.data)
        if self.texts:
            name = self.texts[0]
            data[name] = [data[name][0] + "x"]
            return data
        for select in self.selects:
            others = [value for value, _, _ in select.options if value not in data[select.name]]
            if not select.multiple and others:
                data[select.name] = others[:1]
                return data
        return None


class FormReader(HTMLParser):
    """Reads the form with id `form_id` from an HTML page into a Form."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.form = Form()
        self.inside = False
        self.select: Select | None = None
        self.option: list[str] | None = None  # value, label, "selected" or ""
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = attr.get("id") == self.form_id
        elif not self.inside or "disabled" in attr:
            return
        elif tag == "input":
            self.read_input(attr)
        elif tag == "select" and attr.get("name"):
            self.select = Select(attr["name"], "multiple" in attr, "required" in attr)
        elif tag == "option" and self.select is not None:
            self.option = [attr.get("value", ""), "", "selected" if "selected" in attr else ""]
        elif tag == "textarea" and attr.get("name"):
            self.textarea = attr["name"]
            self.form.data[self.textarea] = [""]

    def read_input(self, attr: dict[str, str]) -> None:
        name, kind, value = attr.get("name"), attr.get("type", "text"), attr.get("value", "")
        if not name or kind in {"submit", "button", "image", "reset", "file"}:
            return
        if kind in {"checkbox", "radio"}:
            if "checked" in attr:
                self.form.data.setdefault(name, []).append(value or "on")
            return
        self.form.data[name] = [value]
        if kind == "text" and not any(cls in attr.get("class", "") for cls in NOT_FREE_TEXT):
            self.form.texts.append(name)
        if not value and ("required" in attr or kind == "password"):
            self.form.blanks.append((name, kind))

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.form.data[self.textarea][0] += data
        elif self.option is not None:
            self.option[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self.textarea is not None:
            # Browsers drop the newline that opens a textarea's content.
            self.form.data[self.textarea][0] = self.form.data[self.textarea][0].removeprefix("\n")
            self.textarea = None
        elif tag == "option" and self.select is not None and self.option is not None:
            value, label, selected = self.option
            self.select.options.append((value, label.strip(), bool(selected)))
            self.option = None
        elif tag == "select" and self.select is not None:
            self.close_select(self.select)
            self.select = None

    def close_select(self, select: Select) -> None:
        chosen = [value for value, _, selected in select.options if selected]
        if not chosen and not select.multiple and select.options:
            chosen = [select.options[0][0]]  # what a browser sends when nothing is marked
        self.form.data[select.name] = chosen
        self.form.selects.append(select)


def read_form(html: str, form_id: str) -> Form:
    """The fields of the form `form_id` on the page (empty if there is none)."""
    reader = FormReader(form_id)
    reader.feed(html)
    return reader.form
