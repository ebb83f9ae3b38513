package nodeid

var (
	TypeOfOutput = typeOfOutput
	TypeOfInput  = typeOfInput
)
