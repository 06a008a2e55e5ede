"""The ``PythonModel`` the MLflow python_function tests log, as source for their users' scripts
(each script defines it in ``__main__``, so cloudpickle stores it by value, as a user's would)."""

SIZER = '''
class Sizer(mlflow.pyfunc.PythonModel):
    def __init__(self, cut):
        self.cut = cut

    def load_context(self, context):
        with open(context.artifacts["labels"]) as f:
            self.labels = json.load(f)

    def predict(self, context, model_input, params=None):
        return np.where(model_input["x"] > self.cut, self.labels["high"], self.labels["low"])
'''
