"""Comparing the setups of a multirun directory across seeds (no network): what `stage=compare` runs.

    load.py     read every result.json, merge a seed's jobs, refuse mixed code versions, which RMs a run used
    stats.py    per-setup means with 95% intervals, paired differences between setups
    tables.py   compare.md and compare.csv
    fits.py     PPO gold against RM accuracy: each RM mode's gold at a matched accuracy
    figures.py  the plots

Writes compare.md and compare.csv (mean and 95% interval over seeds per setup and metric), gold_vs_step.png (PPO
rollout gold against iteration, mean over seeds), gold_vs_kl.png (each run's held-out gold against its KL to
the SFT policy: the reward-KL frontier) and rm_reliability.png (each RM mode's held-out pairs pooled over runs);
where the runs have them, rm_reliability_by_kind.png (each RM's diagram per prompt kind), gold_vs_rm_accuracy.png
(each run's PPO gold against its RM's accuracy; gold_vs_rm_accuracy.json and a compare.md line give each RM
mode's gold at a matched RM accuracy) and rm_scaling.png (RM accuracy and PPO gold against
the RM's training pairs, for RMs trained on several sizes: experiments/rm_scaling.yaml).

Each (setup, seed) is one observation (`eval.runs`): a seed split over several jobs is merged, and a setup swept
over another key is split into one column per value.

Numbers built by different code are not one experiment: runs whose artifacts came from more than one code version
(`pairwise_rl.provenance`) are refused, or with compare.allow_mixed_code=true compared with the versions in the
table.
"""
