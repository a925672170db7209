"""--data_dir points one task object at a local folder, and nothing else in the process."""

import mteb

from qzhou_eval.runs.offline import attach_data_dir


def test_attaching_a_folder_does_not_leak_into_other_task_objects(demo_dir):
    task = mteb.get_task("PAWSX")
    hub_path = task.metadata.dataset["path"]
    attach_data_dir([task], demo_dir)
    assert task.metadata.dataset["path"] == str((demo_dir / "PAWSX").resolve())
    assert task.metadata.dataset["revision"] == mteb.get_task("PAWSX").metadata.dataset["revision"]
    assert mteb.get_task("PAWSX").metadata.dataset["path"] == hub_path, "mteb shares metadata between instances"
