"""Write the bundled sample datasets in samples/ from the small fact lists below, deterministically.

demo_alpaca.jsonl teaches a fixed answer form, `ANSWER: <short answer>`, that the base demo model
does not produce before training, so a short run visibly changes its behaviour.

Usage: python scripts/make_samples.py [--out samples]
"""
from __future__ import annotations

import argparse
import json
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"), ("Mexico", "Mexico City"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"),
    ("Peru", "Lima"), ("Chile", "Santiago"), ("Australia", "Canberra"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"), ("Poland", "Warsaw"), ("Greece", "Athens"), ("Turkey", "Ankara"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("South Korea", "Seoul"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Hungary", "Budapest"), ("Nigeria", "Abuja"), ("Denmark", "Copenhagen"), ("Belgium", "Brussels"),
    ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"), ("Russia", "Moscow"), ("Indonesia", "Jakarta"),
    ("Philippines", "Manila"), ("Morocco", "Rabat"), ("Cuba", "Havana"), ("Iceland", "Reykjavik"),
]
COLOURS = [
    ("a banana", "yellow"), ("grass", "green"), ("the clear daytime sky", "blue"), ("snow", "white"),
    ("coal", "black"), ("a ripe tomato", "red"), ("an orange", "orange"), ("a lemon", "yellow"),
    ("milk", "white"), ("a fire truck", "red"), ("a carrot", "orange"), ("an emerald", "green"),
    ("chocolate", "brown"), ("a crow", "black"), ("a lime", "green"), ("a pumpkin", "orange"),
    ("a polar bear", "white"), ("an eggplant", "purple"), ("a flamingo", "pink"), ("blood", "red"),
    ("a strawberry", "red"), ("the sun at noon", "yellow"), ("a frog", "green"), ("charcoal", "black"),
    ("a cloud", "white"), ("a blueberry", "blue"), ("a violet", "purple"), ("wood", "brown"),
    ("an apricot", "orange"), ("the sea", "blue"),
]
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
    ("open", "closed"), ("early", "late"), ("full", "empty"), ("strong", "weak"), ("young", "old"),
    ("rich", "poor"), ("wet", "dry"), ("loud", "quiet"), ("hard", "soft"), ("thick", "thin"),
    ("inside", "outside"), ("begin", "end"), ("win", "lose"), ("true", "false"), ("left", "right"),
    ("push", "pull"), ("buy", "sell"), ("always", "never"), ("heavy", "light"), ("high", "low"),
    ("near", "far"), ("clean", "dirty"), ("first", "last"), ("day", "night"),
]
VIETNAMESE = [
    ("Thủ đô của Việt Nam là gì?", "Hà Nội"), ("Thủ đô của Pháp là gì?", "Paris"),
    ("Thủ đô của Nhật Bản là gì?", "Tokyo"), ("Thủ đô của Thái Lan là gì?", "Băng Cốc"),
    ("Thành phố lớn nhất Việt Nam là thành phố nào?", "Thành phố Hồ Chí Minh"),
    ("Lá cây thường có màu gì?", "màu xanh lá"), ("Quả chuối chín có màu gì?", "màu vàng"),
    ("Tuyết có màu gì?", "màu trắng"), ("Bầu trời ban ngày quang đãng có màu gì?", "màu xanh dương"),
    ("Than đá có màu gì?", "màu đen"), ("Từ trái nghĩa với \"nóng\" là gì?", "lạnh"),
    ("Từ trái nghĩa với \"lớn\" là gì?", "nhỏ"), ("Từ trái nghĩa với \"nhanh\" là gì?", "chậm"),
    ("Từ trái nghĩa với \"vui\" là gì?", "buồn"), ("Từ trái nghĩa với \"sáng\" là gì?", "tối"),
    ("Ba cộng bốn bằng mấy?", "7"), ("Mười trừ sáu bằng mấy?", "4"), ("Năm nhân hai bằng mấy?", "10"),
    ("Một tuần có bao nhiêu ngày?", "7 ngày"), ("Một năm có bao nhiêu tháng?", "12 tháng"),
]
SYSTEM_EN = "You are a concise quiz assistant. Start every reply with ANSWER: and give only the short answer."
SYSTEM_VI = "Bạn là trợ lý trả lời câu đố ngắn gọn. Luôn bắt đầu câu trả lời bằng ANSWER: và chỉ đưa ra đáp án ngắn."


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def arithmetic() -> list[tuple[str, str, str]]:
    """(instruction, input, answer): half of them put the expression in `input`."""
    rows = []
    for i in range(70):
        a, b = 2 + (i * 7) % 19, 1 + (i * 5) % 11
        op = "+-x"[i % 3]
        value = a + b if op == "+" else a - b if op == "-" else a * b
        if i % 2:
            rows.append(("Compute the result.", f"{a} {op} {b}", str(value)))
        else:
            rows.append((f"What is {a} {op} {b}?", "", str(value)))
    return rows


def english_pairs() -> list[tuple[str, str, str]]:
    rows = [(f"What is the capital of {country}?", "", city) for country, city in CAPITALS]
    rows += [(f"What colour is {thing}?", "", colour) for thing, colour in COLOURS]
    rows += [(f"What is the opposite of \"{word}\"?", "", other) for word, other in OPPOSITES]
    rows += [("Give the opposite of this word.", other, word) for word, other in OPPOSITES[:10]]
    return rows + arithmetic()


def demo_alpaca() -> list[dict]:
    pairs = english_pairs() + [(question, "", answer) for question, answer in VIETNAMESE]
    return [{"instruction": nfc(q), "input": nfc(extra), "output": nfc(f"ANSWER: {a}")} for q, extra, a in pairs]


def demo_sharegpt() -> list[dict]:
    english = [(q if not extra else f"{q}\n\n{extra}", a) for q, extra, a in english_pairs()]
    conversations = []
    for index in range(24):
        turns = [english[(index * 7 + k * 31) % len(english)] for k in range(2 + index % 3)]
        conversations.append(_sharegpt(SYSTEM_EN, turns))
    for index in range(6):
        turns = [VIETNAMESE[(index * 3 + k * 7) % len(VIETNAMESE)] for k in range(2 + index % 2)]
        conversations.append(_sharegpt(SYSTEM_VI, turns))
    return conversations


def _sharegpt(system: str, turns: list[tuple[str, str]]) -> dict:
    messages = [{"from": "system", "value": nfc(system)}]
    for question, answer in turns:
        messages += [{"from": "human", "value": nfc(question)}, {"from": "gpt", "value": nfc(f"ANSWER: {answer}")}]
    return {"conversations": messages}


def broken_rows() -> bytes:
    """An Alpaca file mixing valid rows with one example of each kind of row error."""
    lines = [
        json.dumps({"instruction": "What is the capital of Italy?", "input": "", "output": "ANSWER: Rome"}),
        json.dumps({"instruction": "What colour is snow?", "input": ""}),
        json.dumps({"instruction": "What is 2 + 2?", "input": "", "output": 4}),
        json.dumps({"instruction": "What is the opposite of up?", "input": "", "output": "   "}),
        '{"instruction": "What is the capital of Peru?", "output": "ANSWER: Lima"',
        json.dumps({"instruction": "Thủ đô của Việt Nam là gì?", "input": "", "output": "ANSWER: Hà Nội"},
                   ensure_ascii=False),
        json.dumps({"instruction": "Name a colour.", "output": "ANSWER: red", "history": [["Hi"]]}),
        json.dumps({"instruction": "", "input": "", "output": "ANSWER: nothing"}),
        json.dumps({"instruction": "What is the opposite of hot?", "output": "ANSWER: cold", "system": ["be brief"]}),
    ]
    data = "\n".join(lines).encode("utf-8") + b"\n"
    # a row whose bytes are Latin-1, not UTF-8, as a spreadsheet export might write it
    return data + '{"instruction": "Café?", "output": "ANSWER: oui"}\n'.encode("latin-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "samples")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_alpaca.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in demo_alpaca()), encoding="utf-8")
    (out / "demo_sharegpt.json").write_text(
        json.dumps(demo_sharegpt(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / "broken_rows.jsonl").write_bytes(broken_rows())


if __name__ == "__main__":
    main()
