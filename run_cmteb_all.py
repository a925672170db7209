"""Evaluate a checkpoint on MTEB(cmn, v1) under the QZhou protocol (reference flags accepted unchanged).

    python3 run_cmteb_all.py --model_name_or_path PATH --normalize true --dim 1792 \
        --use_instruction true --output_dir results --preset qzhou-embedding-zh
"""

import sys

from qzhou_eval.cli.run_cmd import main_for_benchmark

if __name__ == "__main__":
    sys.exit(main_for_benchmark("MTEB(cmn, v1)"))
