pytest_plugins = ["kubetest.fixtures"]
