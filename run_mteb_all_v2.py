"""Evaluate a checkpoint on MTEB(eng, v2) under the QZhou protocol (reference flags accepted unchanged).

    python3 run_mteb_all_v2.py --model_name_or_path PATH --pooling_mode mean --normalize true \
        --use_instruction true --output_dir results
"""

import sys

from qzhou_eval.cli.run_cmd import main_for_benchmark

if __name__ == "__main__":
    sys.exit(main_for_benchmark("MTEB(eng, v2)"))
