"""`python -m course_runtime doctor`: the instructor's readiness check (see doctor.py)."""
import sys

USAGE = "usage: python -m course_runtime doctor    # is this machine ready for the course?"

if __name__ == "__main__":
    if sys.argv[1:2] != ["doctor"]:
        sys.exit(USAGE)
    from course_runtime import doctor
    sys.exit(doctor.main(sys.argv[2:]))
