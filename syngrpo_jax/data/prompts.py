"""Prompt templates (the text the policy sees next to the image) and SFT targets, per task and response format.

A prompt is three sentences joined by spaces: the task question, the response-format instruction, the answer
specification.

Task questions follow VLM-R1 (om-ai-lab/VLM-R1), the code base Syn-GRPO builds on:
  REC      "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
           (VLM-R1's `problem` field in rec_jsons_processed)
  OVD/ISR  "Please carefully check the image and detect the following objects: ["a", "b"]."
           (VLM-R1's OVD prompt; the label list as JSON)
  QA       the question itself.

Format instructions extend VLM-R1's "First output the thinking process in <think> </think> tags and then output
the final answer in <answer> </answer> tags." with Syn-GRPO's two extra tags, in the order of
`rewards.response_format.RESPONSE_FORMATS`: <score> (the policy's own prediction, in [0, 1], of how diverse its
answers to this input are; the diversity reward scores it) and <description> (a new background for the image; the
data server paints it). A prompt names exactly the tags of its format, no others.

Answers (inside <answer>):
  REC      {"bbox_2d": [x1, y1, x2, y2], "label": "..."}        (VLM-R1's "Output the final answer in JSON format.")
  OVD/ISR  [{"bbox_2d": [x1, y1, x2, y2], "label": "..."}, ...]  ([] when none of the objects is present; VLM-R1
           asked for "None" there, a list is simpler to parse and to score)
  QA       \\boxed{...}
Coordinates are integer pixels of the image as the model sees it (Qwen2.5-VL's absolute coordinates, i.e. the
resized image); `build_target` converts ground truth from original-image pixels to that frame.
"""
from __future__ import annotations

import json

import numpy as np

from syngrpo_jax.data import descriptions
from syngrpo_jax.data.sample import Sample, image_size_of
from syngrpo_jax.rewards.response_format import response_tags

REC_QUESTION = "Please provide the bounding box coordinate of the region this sentence describes: {expression}."
DETECTION_QUESTION = "Please carefully check the image and detect the following objects: {categories}."

_TAG_SENTENCES = {
    "think": "output the thinking process in <think> </think> tags",
    "score": ("output in <score> </score> tags a number between 0 and 1 that predicts how diverse your answers "
              "to this image and question would be if you answered many times (0: always the same answer, "
              "1: very different answers)"),
    "description": ("output in <description> </description> tags a short description of a new background for "
                    "this image that keeps its objects unchanged"),
    "answer": "output the final answer in <answer> </answer> tags",
}

ANSWER_SPECS = {
    "rec": ('Output the final answer in JSON format: {"bbox_2d": [x1, y1, x2, y2], "label": "object name"}, '
            "with the box in pixel coordinates of the image."),
    "ovd": ('Output the final answer in JSON format, as a list with one entry per detected object: '
            '[{"bbox_2d": [x1, y1, x2, y2], "label": "object name"}], with boxes in pixel coordinates of the image '
            "and labels from the list above. If none of the objects is in the image, output an empty list []."),
    "qa": "Put the final answer in \\boxed{} inside the answer tags.",
}
ANSWER_SPECS["isr"] = ANSWER_SPECS["ovd"]

# Fixed text for the parts of an SFT target that have no ground truth.
TARGET_THINK = {
    "rec": "I find the object that the expression describes and read off its bounding box.",
    "ovd": "I check the image for each listed object and box every instance I find.",
    "isr": "I check the room for each listed object and box every instance I find.",
    "qa": "I read the relevant part of the image and work out the answer.",
}
TARGET_SCORE = "0.5"


def task_question(sample: Sample) -> str:
    if sample.task == "rec":
        return REC_QUESTION.format(expression=sample.query)
    if sample.task in ("ovd", "isr"):
        question = DETECTION_QUESTION.format(categories=json.dumps(list(sample.categories)))
        return f"{question} {sample.query}" if sample.query.strip() else question
    return sample.query


def format_instruction(fmt: str) -> str:
    """The sentence naming, in order, the tags of response format `fmt`."""
    tags = response_tags(fmt)
    steps = [_TAG_SENTENCES[t] for t in tags]
    if len(steps) == 2:
        return f"First {steps[0]} and then {steps[1]}."
    middle = "; then ".join(steps[1:-1])
    return f"First {steps[0]}; then {middle}; finally {steps[-1]}."


def build_prompt(sample: Sample, fmt: str) -> str:
    """The text shown with the sample's image: task question, format instruction, answer specification."""
    return f"{task_question(sample)} {format_instruction(fmt)} {ANSWER_SPECS[sample.task]}"


def boxes_in_model_pixels(boxes: np.ndarray, image_size: tuple[int, int], model_hw: tuple[int, int]) -> np.ndarray:
    """int64 [N, 4]: xyxy boxes from original-image pixels (`image_size` = (width, height)) to the pixels of the
    image resized to `model_hw` = (height, width), rounded, clipped, and at least one pixel wide and high."""
    (orig_w, orig_h), (h, w) = image_size, model_hw
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scaled = np.rint(boxes * np.array([w / orig_w, h / orig_h, w / orig_w, h / orig_h]))
    scaled = np.clip(scaled, 0, [w, h, w, h]).astype(np.int64)
    for lo, hi, limit in ((0, 2, w), (1, 3, h)):
        thin = scaled[:, hi] <= scaled[:, lo]
        scaled[thin, hi] = np.minimum(scaled[thin, lo] + 1, limit)
        scaled[thin, lo] = scaled[thin, hi] - 1
    return scaled


def answer_text(sample: Sample, model_hw: tuple[int, int]) -> str:
    """The ground truth as the content of <answer>, with boxes in the resized image's pixels."""
    if sample.task == "qa":
        return f"\\boxed{{{sample.answer}}}"
    boxes = boxes_in_model_pixels(sample.boxes, image_size_of(sample), model_hw).tolist()
    objects = [{"bbox_2d": box, "label": label} for box, label in zip(boxes, sample.labels)]
    return json.dumps(objects[0] if sample.task == "rec" else objects)


def target_description(sample: Sample) -> str:
    """The new-background description a target teaches for this sample: varied across images, specific to this one
    (engine samples carry their object colours and background kind in meta), in the procedural backend's
    vocabulary (see `descriptions.for_sample`)."""
    return descriptions.for_sample(sample.sample_id, sample.meta.get("object_colors", ()),
                                   sample.meta.get("background"))


def build_target(sample: Sample, fmt: str, model_hw: tuple[int, int]) -> str:
    """A well-formed response in format `fmt` whose answer is the ground truth (for the SFT warm start): a short
    fixed think text, score 0.5, the sample's target description, boxes in pixels of the image resized to
    model_hw."""
    parts = {"think": TARGET_THINK[sample.task], "score": TARGET_SCORE, "description": target_description(sample),
             "answer": answer_text(sample, model_hw)}
    return "".join(f"<{tag}>{parts[tag]}</{tag}>" for tag in response_tags(fmt))
