"""Tasks of the quickstart environment: one row per template call (`hud task list` shows them)."""

from env import add, count, reverse

tasks = [
    count(sentence="Strawberry world", letter="r"),
    count(sentence="banana", letter="a"),
    add(a=17, b=25),
    add(a=-4, b=9),
    reverse(word="stressed"),
    reverse(word="Level"),
]
