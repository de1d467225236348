"""runtime_env: environment variables, a working directory and modules for a task or an actor, as in Ray 2.60.

Shared public-API tests (both backends), then the course runtime's refusals of what needs real Ray."""
import os
import textwrap

import pytest


def _environ(ray):
    @ray.remote
    def read(*names):
        return [os.environ.get(name) for name in names]

    return read


def test_env_vars_reach_the_task_and_leak_to_no_other_task(ray_start):
    ray = ray_start
    read = _environ(ray)
    with_env = read.options(runtime_env={"env_vars": {"COURSE_TEST_COLOUR": "teal"}})
    assert ray.get(with_env.remote("COURSE_TEST_COLOUR"), timeout=120) == ["teal"]
    # Every worker that could have run it runs plain tasks next: none of them sees the variable.
    assert ray.get([read.remote("COURSE_TEST_COLOUR") for _ in range(20)], timeout=120) == [[None]] * 20


def test_options_replace_the_decorators_runtime_env_and_nested_tasks_inherit_it(ray_start):
    ray = ray_start
    read = _environ(ray)

    @ray.remote(runtime_env={"env_vars": {"COURSE_TEST_A": "decorator"}})
    def decorated():
        return os.environ.get("COURSE_TEST_A"), os.environ.get("COURSE_TEST_B")

    @ray.remote
    def parent():
        return ray.get(read.remote("COURSE_TEST_A"))

    assert ray.get(decorated.remote(), timeout=120) == ("decorator", None)
    replaced = decorated.options(runtime_env={"env_vars": {"COURSE_TEST_B": "options"}})
    assert ray.get(replaced.remote(), timeout=120) == (None, "options")
    inheriting = parent.options(runtime_env={"env_vars": {"COURSE_TEST_A": "parent"}})
    assert ray.get(inheriting.remote(), timeout=120) == ["parent"]


def test_the_jobs_runtime_env_is_merged_into_each_tasks(ray_module):
    ray = ray_module
    ray.init(num_cpus=1, include_dashboard=False,
             runtime_env={"env_vars": {"COURSE_TEST_A": "job", "COURSE_TEST_B": "job"}})
    read = _environ(ray)
    names = ("COURSE_TEST_A", "COURSE_TEST_B", "COURSE_TEST_C")
    assert ray.get(read.remote(*names), timeout=120) == ["job", "job", None]
    task_env = {"env_vars": {"COURSE_TEST_A": "task", "COURSE_TEST_C": "task"}}
    assert ray.get(read.options(runtime_env=task_env).remote(*names), timeout=120) == ["task", "job", "task"]
    assert ray.get_runtime_context().runtime_env["env_vars"] == {"COURSE_TEST_A": "job", "COURSE_TEST_B": "job"}


def test_an_actor_keeps_its_env_vars_for_life_and_other_actors_do_not_see_them(ray_start):
    ray = ray_start

    @ray.remote
    class Reader:
        def read(self):
            return os.environ.get("COURSE_TEST_ROLE")

    special = Reader.options(runtime_env={"env_vars": {"COURSE_TEST_ROLE": "special"}}).remote()
    plain = Reader.remote()
    assert ray.get([special.read.remote(), special.read.remote(), plain.read.remote()], timeout=120) == \
        ["special", "special", None]


def _package(tmp_path):
    """A working directory with a module and a data file, and a package directory for py_modules."""
    work = tmp_path / "project"
    work.mkdir()
    (work / "course_helper_mod.py").write_text("def answer():\n    return 42\n")
    (work / "settings.txt").write_text("from the working dir\n")
    package = tmp_path / "libs" / "course_test_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""\
        def greet(name):
            return f"hello, {name}"
    """))
    return work, package


def test_the_jobs_working_dir_and_py_modules_make_local_code_and_files_available(ray_module, tmp_path):
    ray = ray_module
    work, package = _package(tmp_path)
    ray.init(num_cpus=1, include_dashboard=False,
             runtime_env={"working_dir": str(work), "py_modules": [str(package)]})

    @ray.remote
    def use_them():
        import course_helper_mod
        import course_test_pkg
        with open("settings.txt") as f:  # relative to the working directory
            return course_helper_mod.answer(), course_test_pkg.greet("ray"), f.read().strip()

    @ray.remote
    class User:
        def use(self):
            import course_helper_mod
            return course_helper_mod.answer()

    assert ray.get(use_them.remote(), timeout=180) == (42, "hello, ray", "from the working dir")
    assert ray.get(User.remote().use.remote(), timeout=180) == 42


def test_local_directories_for_one_task_are_refused_as_in_ray(ray_start, tmp_path):
    ray = ray_start
    read = _environ(ray)
    work, package = _package(tmp_path)
    for env in ({"working_dir": str(work)}, {"py_modules": [str(package)]}):
        with pytest.raises(ValueError, match="only supported at the job level"):
            ray.get(read.options(runtime_env=env).remote(), timeout=60)


def test_bad_runtime_envs_are_refused_with_rays_errors(ray_start, tmp_path):
    ray = ray_start
    read = _environ(ray)
    with pytest.raises(TypeError, match="must be of type Dict"):
        ray.get(read.options(runtime_env={"env_vars": {"COURSE_TEST_A": 1}}).remote(), timeout=60)
    with pytest.raises(TypeError, match="must be of type Dict"):
        ray.get(read.options(runtime_env={"env_vars": "COURSE_TEST_A=1"}).remote(), timeout=60)
    with pytest.raises(TypeError, match="runtime_env"):
        read.options(runtime_env="env_vars").remote()
    ray.shutdown()
    with pytest.raises(ValueError, match="must be an existing directory"):
        ray.init(num_cpus=1, include_dashboard=False, runtime_env={"working_dir": str(tmp_path / "missing")})


@pytest.mark.course_only
def test_what_needs_real_ray_is_a_clear_error_not_ignored(ray_start):
    ray = ray_start
    read = _environ(ray)
    for field, value in [("pip", ["requests"]), ("conda", "env"), ("uv", ["x"]), ("container", {"image": "x"})]:
        with pytest.raises(NotImplementedError, match=rf"{field}.*COURSE_BACKEND=ray"):
            read.options(runtime_env={field: value})
    with pytest.raises(NotImplementedError, match="local directories only"):
        read.options(runtime_env={"working_dir": "s3://bucket/project.zip"})
    with pytest.raises(ValueError, match="Unknown runtime_env field 'colour'"):
        read.options(runtime_env={"colour": "teal"})
    with pytest.raises(NotImplementedError, match="pip"):
        ray.shutdown()
        ray.init(num_cpus=1, runtime_env={"pip": ["requests"]})
