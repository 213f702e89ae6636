"""Tasks of the browser environment: read and fill in pages in headless Chromium over CDP."""

from env import read_answer, submit_form

tasks = [
    read_answer(),
    submit_form(name="Ada Lovelace"),
]
