pytest_plugins = ["kubetest.fixtures", "kubetest.proxy"]
